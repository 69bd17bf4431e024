"""schemathesis against the app's own OpenAPI schema, every call through the real Nginx.

The schema is read from the app's socket (Nginx does not serve it); the cases it generates,
valid and invalid, go to Nginx's address, so uploads land on disk and reach the callback as
in production. No answer may be a 5xx, and each must match the schema: status, content type,
headers and body. Two heuristics are left out where they cannot hold here (see `_excluded`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from conftest import LiveStack
from helpers import app_client, eventually
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from callback_api.auth import new_token

# One client address sends everything: lift the per-address upload limits.
OPEN_LIMITS = {"upload_rate": "10000r/s", "upload_burst": 10000, "upload_connections": 1000}
EXAMPLES = int(os.environ.get("LANDING_SCHEMATHESIS_EXAMPLES", "120"))
OPERATIONS = [
    ("GET", "/api/items/{item_id}/media"),
    ("PUT", "/api/items/{item_id}/media"),
    ("POST", "/api/items/{item_id}/media"),
    ("GET", "/api/media/{media_id}"),
    ("GET", "/api/media/{media_id}/content"),
    ("DELETE", "/api/media/{media_id}"),
]


def _schema_of(stack: LiveStack, token: str | None) -> Any:
    # With a token, schemathesis sends it where the schema asks for it, and leaves it out or
    # spoils it in the cases that test the auth itself.
    auth = {"auth": {"openapi": {"HTTPBearer": {"bearer": token}}}} if token else {}
    with app_client(stack.settings.app.socket) as app:
        document = app.get("/openapi.json").json()
    return schemathesis.openapi.from_dict(document, config=SchemathesisConfig.from_dict(auth))


def _seed(stack: LiveStack, headers: dict[str, str]) -> list[str]:
    """Stored media, so that the media routes meet ids that exist, not only 404s."""
    ids = []
    for n in range(8):
        response = httpx.put(
            f"{stack.url}/api/items/seed/media?filename=s{n}.txt",
            content=f"seed {n}\n".encode(),
            headers=headers,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def _excluded(method: str, status: int) -> list[Any]:
    excluded = []
    if method in ("PUT", "POST"):
        # A schema-valid upload may still be refused for what its bytes are (415, 422), for
        # being empty (400) or for a key already used with another body (422); and a body is
        # bytes, a form field text, so no body breaks the schema on the wire ("-45" sent for
        # a string is the same bytes as for an integer).
        excluded += [positive_data_acceptance, negative_data_rejection]
    elif status == 414:
        # Nginx's refusal of a request line over 8k; the check does not count 414 as one.
        excluded.append(negative_data_rejection)
    return excluded


def _run(stack: LiveStack, operation: Any, ids: list[str]) -> dict[int, int]:
    """Valid and invalid cases of one operation (and, for media routes, seeded ids)."""
    seen: dict[int, int] = {}
    strategies = [
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    ]
    if "{media_id}" in operation.path:
        strategies += [operation.as_strategy(path_parameters={"media_id": i}) for i in ids]

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=stack.url, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        case.validate_response(
            response, excluded_checks=_excluded(case.method.upper(), response.status_code)
        )

    run()
    return seen


def _fuzz(stack: LiveStack, token: str | None) -> dict[tuple[str, str], dict[int, int]]:
    schema = _schema_of(stack, token)
    ids = _seed(stack, {"Authorization": f"Bearer {token}"} if token else {})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert sorted((op.method.upper(), op.path) for op in operations) == sorted(OPERATIONS)
    # DELETE last: it would remove the seeded media the other routes are meant to find.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    return {(op.method.upper(), op.path): _run(stack, op, ids) for op in operations}


def _assert_books_balance(stack: LiveStack) -> None:
    assert eventually(lambda: stack.temp_files() == [])
    rows = stack.rows()
    assert all(row["state"] == "ready" for row in rows)
    assert sorted(row["id"] for row in rows) == sorted(p.name for p in stack.media_files())


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(limits=OPEN_LIMITS)
    statuses = _fuzz(stack, token=None)
    # The runs reached the interesting answers, not only refusals.
    assert statuses[("PUT", "/api/items/{item_id}/media")].get(201, 0) > 0
    assert statuses[("POST", "/api/items/{item_id}/media")].get(201, 0) > 0
    assert statuses[("GET", "/api/media/{media_id}/content")].get(200, 0) > 0
    assert statuses[("DELETE", "/api/media/{media_id}")].get(204, 0) > 0
    _assert_books_balance(stack)


def test_schemathesis_with_auth_finds_no_server_error_and_no_schema_violation(
    make_stack: Callable[..., LiveStack], tmp_path: Path
) -> None:
    token, digest = new_token()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{digest} read,write fuzzer\n")
    stack = make_stack(limits=OPEN_LIMITS, auth={"enabled": True, "tokens_file": str(tokens)})
    statuses = _fuzz(stack, token)
    assert statuses[("PUT", "/api/items/{item_id}/media")].get(201, 0) > 0
    _assert_books_balance(stack)


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_upload_routes_called_on_the_app_socket_are_421(stack: LiveStack, method: str) -> None:
    # In the schema for clients; Nginx answers them. The app never takes a body itself.
    with app_client(stack.settings.app.socket) as app:
        response = app.request(method, "/api/items/42/media?filename=a.txt", content=b"hello")
    assert response.status_code == 421
    assert response.json()["code"] == "ERR_MISDIRECTED"
    assert stack.rows() == [] and stack.media_files() == []
