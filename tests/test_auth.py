"""Bearer tokens: Nginx asks the app before one body byte is stored; the app guards the API."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import LiveStack
from helpers import app_client, eventually
from test_disk_full import _fill_bytes, small_fs  # noqa: F401 - small_fs is a fixture

from callback_api.auth import (
    MAX_TOKEN_CHARS,
    TokenFileError,
    TokenVerifier,
    hash_token,
    new_token,
    parse_tokens,
)
from callback_api.errors import Forbidden, Unauthenticated

MB = 1024 * 1024
REALM = 'Bearer realm="landing"'


class Tokens:
    """A tokens file with one read-write and one read-only token."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer, writer_digest = new_token()
        self.reader, reader_digest = new_token()
        self.write(f"{writer_digest} read,write writer\n{reader_digest} read reader  # a comment\n")

    def write(self, text: str) -> None:
        # Atomic replace, as docs/security.md tells operators to do it.
        scratch = self.path.with_name(self.path.name + ".tmp")
        scratch.write_text(text)
        scratch.chmod(0o600)
        os.replace(scratch, self.path)


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path / "auth-tokens")


@pytest.fixture
def guarded(make_stack: Callable[..., LiveStack], tokens: Tokens) -> LiveStack:
    return make_stack(auth={"enabled": True, "tokens_file": str(tokens.path)})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_nothing_stored(stack: LiveStack) -> None:
    assert stack.temp_files() == []
    assert stack.rows() == []
    assert stack.media_files() == []


def _read_answer(sock: socket.socket, timeout: float) -> bytes:
    """Bytes the server sent within timeout (the headers and a small JSON body)."""
    sock.settimeout(timeout)
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except TimeoutError:
        pass
    return answer


@pytest.mark.parametrize("expect_continue", [True, False])
def test_upload_without_a_token_is_refused_before_one_body_byte_is_stored(
    guarded: LiveStack, expect_continue: bool
) -> None:
    size = 20 * MB
    head = (
        f"PUT /api/items/42/media?filename=big.bin HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {size}\r\n"
    ).encode()
    if expect_continue:
        head += b"Expect: 100-continue\r\n"
    temp_files_seen: list[Path] = []
    with socket.create_connection(("127.0.0.1", guarded.settings.server.listen[0].port)) as sock:
        sock.sendall(head + b"\r\n")
        if not expect_continue:
            sock.sendall(os.urandom(256 * 1024))
        answer = _read_answer(sock, timeout=5)
        # Send the rest anyway, slowly, as a client that ignores the answer would: Nginx reads
        # and drops it; a temp file would live as long as the body takes to arrive.
        sent = 0 if expect_continue else 256 * 1024
        while sent < size:
            sock.sendall(os.urandom(1024 * 1024))
            sent += 1024 * 1024
            temp_files_seen += guarded.temp_files()
            time.sleep(0.02)
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line == b"HTTP/1.1 401 Unauthorized"  # no "100 Continue" before it
    assert b"\r\nwww-authenticate: " + REALM.encode() + b"\r\n" in b"\r\n" + headers + b"\r\n"
    assert b"content-type: application/json" in headers.lower()
    assert json.loads(body) == {
        "detail": "a valid bearer token is required",
        "code": "ERR_UNAUTHORIZED",
    }
    assert temp_files_seen == []
    _assert_nothing_stored(guarded)


@pytest.mark.parametrize("size", [60_000, 5 * MB])
def test_http2_upload_without_a_token_is_refused_and_stores_nothing(
    guarded: LiveStack, payload: Callable[[int], Path], size: int
) -> None:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2-prior-knowledge",
            "-T",
            str(payload(size)),
            "-w",
            "\n%{http_code} %{http_version}",
            f"http://127.0.0.1:{guarded.h2c_port}/api/items/42/media?filename=h2.bin",
        ],
        capture_output=True,
        timeout=60,
    )
    if size > 64 * 1024:
        # Nginx answers 401 and then resets the stream with NO_ERROR, telling the client to
        # stop sending (RFC 9113 8.1). Depending on timing curl 7.88 shows the 401, shows it
        # and exits 18 (partial transfer), or drops it and exits 92 (stream error).
        assert (result.returncode, result.stdout[-5:]) in [
            (0, b"401 2"),
            (18, b"401 2"),
            (92, b"000 0"),
        ]
    else:
        body, status = result.stdout.rsplit(b"\n", 1)
        assert status == b"401 2"
        assert json.loads(body)["code"] == "ERR_UNAUTHORIZED"
    _assert_nothing_stored(guarded)


def test_chunked_upload_without_a_token_is_refused_and_stores_nothing(
    guarded: LiveStack, payload: Callable[[int], Path]
) -> None:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-T",
            str(payload(3 * MB)),
            "-H",
            "Transfer-Encoding: chunked",
            "-w",
            "\n%{http_code}",
            f"{guarded.url}/api/items/42/media?filename=c.bin",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.rsplit(b"\n", 1)[1] == b"401"
    _assert_nothing_stored(guarded)


def test_upload_with_an_unknown_token_is_401_invalid_token(guarded: LiveStack) -> None:
    response = httpx.put(
        f"{guarded.url}/api/items/42/media?filename=a.txt",
        content=b"a" * MB,
        headers=_bearer(new_token()[0]),
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'{REALM}, error="invalid_token", error_description="the bearer token is not valid"'
    )
    assert response.json()["code"] == "ERR_UNAUTHORIZED"
    _assert_nothing_stored(guarded)


def test_upload_with_a_read_only_token_is_403(guarded: LiveStack, tokens: Tokens) -> None:
    response = httpx.put(
        f"{guarded.url}/api/items/42/media?filename=a.txt",
        content=b"a" * MB,
        headers=_bearer(tokens.reader),
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "the bearer token does not allow this request",
        "code": "ERR_FORBIDDEN",
    }
    _assert_nothing_stored(guarded)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer two words",
        "Bearer caf\u00e9",
        "Bearer " + "a" * 2000,
    ],
    ids=["basic", "no-token", "two-words", "non-ascii", "too-long"],
)
def test_malformed_authorization_is_401_and_stores_nothing(
    guarded: LiveStack, authorization: str
) -> None:
    response = httpx.put(
        f"{guarded.url}/api/items/42/media?filename=a.txt",
        content=b"a" * 1000,
        headers={"Authorization": authorization.encode("utf-8")},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(REALM + ', error="invalid_')
    _assert_nothing_stored(guarded)


def test_upload_over_1mb_with_a_valid_token_is_stored(
    guarded: LiveStack, tokens: Tokens, payload: Callable[[int], Path]
) -> None:
    # Pins `client_max_body_size 0` in the auth location: without it this is a 500.
    sent = payload(20 * MB)
    with sent.open("rb") as body:
        response = httpx.put(
            f"{guarded.url}/api/items/42/media?filename=big.bin",
            content=body,
            headers=_bearer(tokens.writer),
            timeout=60,
        )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == 20 * MB
    assert len(guarded.rows()) == len(guarded.media_files()) == 1
    assert eventually(lambda: guarded.temp_files() == [])


def test_auth_service_down_is_503_and_stores_nothing(
    guarded: LiveStack, tokens: Tokens, payload: Callable[[int], Path]
) -> None:
    guarded.stack.stop_app()
    with payload(5 * MB).open("rb") as body:
        response = httpx.put(
            f"{guarded.url}/api/items/42/media?filename=a.bin",
            content=body,
            headers=_bearer(tokens.writer),
            timeout=60,
        )
    assert response.status_code == 503
    assert response.json() == {
        "detail": "authorisation cannot be checked now",
        "code": "ERR_AUTH_UNAVAILABLE",
    }
    assert guarded.temp_files() == []
    assert guarded.media_files() == []


def test_auth_service_erroring_is_503_and_stores_nothing(
    guarded: LiveStack, tokens: Tokens
) -> None:
    tokens.path.write_text("this line is not a digest read,write\n")
    upload = httpx.put(
        f"{guarded.url}/api/items/42/media?filename=a.txt",
        content=b"a" * MB,
        headers=_bearer(tokens.writer),
    )
    assert upload.status_code == 503
    assert upload.json()["code"] == "ERR_AUTH_UNAVAILABLE"
    # The API fails closed the same way, with the cause for the operator.
    listing = httpx.get(f"{guarded.url}/api/items/42/media", headers=_bearer(tokens.writer))
    assert listing.status_code == 503
    assert listing.json()["code"] == "ERR_UNAVAILABLE"
    assert f"{tokens.path}:1: the first word is not a SHA-256 digest" in listing.json()["detail"]
    _assert_nothing_stored(guarded)


def test_reads_need_a_read_token_and_deletes_a_write_token(
    guarded: LiveStack, tokens: Tokens
) -> None:
    created = httpx.put(
        f"{guarded.url}/api/items/42/media?filename=a.txt",
        content=b"hello",
        headers=_bearer(tokens.writer),
    ).json()
    media = f"{guarded.url}/api/media/{created['id']}"
    reads = [f"{guarded.url}/api/items/42/media", media, media + "/content"]
    for url in reads:
        anonymous = httpx.get(url)
        assert anonymous.status_code == 401, url
        assert anonymous.headers["www-authenticate"] == REALM
        assert anonymous.json() == {
            "detail": "a bearer token is required",
            "code": "ERR_UNAUTHORIZED",
        }
        assert httpx.get(url, headers=_bearer(tokens.reader)).status_code == 200, url
    assert httpx.get(media + "/content", headers=_bearer(tokens.reader)).content == b"hello"
    assert httpx.delete(media).status_code == 401
    refused = httpx.delete(media, headers=_bearer(tokens.reader))
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "the bearer token may not write (it may read)",
        "code": "ERR_FORBIDDEN",
    }
    assert httpx.delete(media, headers=_bearer(tokens.writer)).status_code == 204
    assert guarded.rows() == [] and guarded.media_files() == []


def test_public_reads_open_gets_but_not_uploads_or_deletes(
    make_stack: Callable[..., LiveStack], tokens: Tokens
) -> None:
    stack = make_stack(
        auth={"enabled": True, "tokens_file": str(tokens.path), "public_reads": True}
    )
    created = httpx.put(
        f"{stack.url}/api/items/42/media?filename=a.txt",
        content=b"hello",
        headers=_bearer(tokens.writer),
    ).json()
    assert httpx.get(f"{stack.url}/api/media/{created['id']}/content").content == b"hello"
    assert httpx.get(f"{stack.url}/api/items/42/media").json()["items"][0]["id"] == created["id"]
    upload = httpx.put(f"{stack.url}/api/items/42/media?filename=b.txt", content=b"b")
    assert upload.status_code == 401
    assert httpx.delete(f"{stack.url}/api/media/{created['id']}").status_code == 401
    assert len(stack.rows()) == 1


def test_callback_refuses_a_request_without_a_token_even_with_the_secret(
    guarded: LiveStack,
) -> None:
    with app_client(guarded.settings.app.socket) as app:
        answer = app.post(
            "/internal/landed/items/42",
            headers={"X-Upload-Path": "/etc/passwd", "X-Landing-Secret": guarded.secret},
        )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == REALM
    assert guarded.rows() == []


def test_auth_endpoint_needs_the_secret(guarded: LiveStack, tokens: Tokens) -> None:
    with app_client(guarded.settings.app.socket) as app:
        answer = app.get("/internal/auth", headers=_bearer(tokens.writer))
    assert answer.status_code == 403
    through_nginx = httpx.get(f"{guarded.url}/internal/auth", headers=_bearer(tokens.writer))
    assert through_nginx.status_code == 404


def test_a_changed_tokens_file_is_used_without_a_restart(
    guarded: LiveStack, tokens: Tokens
) -> None:
    url = f"{guarded.url}/api/items/42/media"
    fresh, digest = new_token()
    assert httpx.get(url, headers=_bearer(fresh)).status_code == 401
    tokens.write(f"{digest} read fresh\n")
    assert httpx.get(url, headers=_bearer(fresh)).status_code == 200
    # The old tokens are gone with their lines: revoked at once, for uploads too.
    assert httpx.get(url, headers=_bearer(tokens.writer)).status_code == 401
    revoked = httpx.put(url + "?filename=a.txt", content=b"a", headers=_bearer(tokens.writer))
    assert revoked.status_code == 401
    _assert_nothing_stored(guarded)


def test_openapi_schema_declares_the_bearer_scheme(guarded: LiveStack) -> None:
    with app_client(guarded.settings.app.socket) as app:
        schema = app.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)


def test_the_app_refuses_to_start_without_its_tokens_file(
    make_stack: Callable[..., LiveStack], tmp_path: Path
) -> None:
    from callback_api.devstack import StackError

    with pytest.raises(StackError, match="exited with status"):
        make_stack(auth={"enabled": True, "tokens_file": str(tmp_path / "missing")})


def test_verifier_refuses_a_missing_or_world_writable_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    with pytest.raises(TokenFileError, match="no tokens file"):
        TokenVerifier(path, "landing", public_reads=False)
    path.write_text(f"{new_token()[1]} read x\n")
    path.chmod(0o666)
    with pytest.raises(TokenFileError, match="anyone may write the tokens file"):
        TokenVerifier(path, "landing", public_reads=False)


def test_a_pasted_token_is_refused_without_being_echoed(tmp_path: Path) -> None:
    token = new_token()[0]
    with pytest.raises(TokenFileError) as caught:
        parse_tokens(f"# header\n\n{token} read,write oops\n", tmp_path / "t")
    assert str(caught.value).startswith(f"{tmp_path / 't'}:3: the first word is not a SHA-256")
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{digest}", "expected '<sha256 of the token> <scopes> [label]'"),
        ("{digest} admin", "unknown scope in 'admin'"),
        ("{digest} read\n{digest} write", "the same digest is listed twice"),
    ],
)
def test_bad_token_lines_name_the_problem(tmp_path: Path, line: str, problem: str) -> None:
    with pytest.raises(TokenFileError, match=re.escape(problem)):
        parse_tokens(line.format(digest=hash_token("x" * 43)), tmp_path / "t")


def test_verifier_decides_from_method_and_scopes(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    reader = "r" * 43
    path.write_text(f"{hash_token(reader).upper()} read\n")
    verifier = TokenVerifier(path, "landing", public_reads=False)
    grant = verifier.authorize(f"bearer {reader}", "HEAD")
    assert grant is not None and grant.scopes == {"read"} and grant.label == hash_token(reader)[:12]
    with pytest.raises(Forbidden):
        verifier.authorize(f"Bearer {reader}", "PUT")
    with pytest.raises(Unauthenticated) as caught:
        verifier.authorize("Bearer " + "a" * (MAX_TOKEN_CHARS + 1), "GET")
    assert caught.value.headers["WWW-Authenticate"].startswith(
        'Bearer realm="landing", error="invalid_token"'
    )


def test_temp_dir_full_with_auth_enabled_is_the_same_json_507(
    small_fs: Path,  # noqa: F811 - the fixture imported above
    make_stack: Callable[..., LiveStack],
    tokens: Tokens,
) -> None:
    # With [auth] enabled the auth block answers Nginx's own 500s: a body that cannot be
    # written must still read as a full disk, not as a failed authorisation.
    stack = make_stack(
        paths={"temp_dir": str(small_fs / "body"), "media_root": str(small_fs / "media")},
        auth={"enabled": True, "tokens_file": str(tokens.path)},
    )
    filler = _fill_bytes(small_fs, leave=MB)
    full = httpx.put(
        f"{stack.url}/api/items/42/media?filename=f.bin",
        content=os.urandom(4 * MB),
        headers=_bearer(tokens.writer),
        timeout=30,
    )
    assert full.status_code == 507
    assert full.json()["code"] == "ERR_INSUFFICIENT_STORAGE"
    assert eventually(lambda: stack.temp_files() == [])
    assert stack.rows() == [] and stack.media_files() == []
    filler.unlink()
    after = httpx.put(
        f"{stack.url}/api/items/42/media?filename=f.bin",
        content=os.urandom(4 * MB),
        headers=_bearer(tokens.writer),
        timeout=30,
    )
    assert after.status_code == 201


def test_the_auth_endpoint_asks_for_write_when_nginx_names_no_method(
    guarded: LiveStack, tokens: Tokens
) -> None:
    with app_client(guarded.settings.app.socket) as app:
        secret = {"X-Landing-Secret": guarded.secret}
        reader = app.get("/internal/auth", headers={**secret, **_bearer(tokens.reader)})
        read = app.get(
            "/internal/auth",
            headers={**secret, **_bearer(tokens.reader), "X-Original-Method": "GET"},
        )
    assert (reader.status_code, read.status_code) == (403, 204)
