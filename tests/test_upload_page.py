"""The upload page in Debian's headless Chromium, against the real stack (Nginx + uvicorn).

Nothing on the server side is mocked. Three tests put a Playwright route between the page and
Nginx only to lose an answer or hold requests, which a real network can do at any time; the
502 comes from the real Nginx while the test has stopped the real app.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import LiveStack
from helpers import eventually, png_chunk, sha256_bytes, sha256_of
from playwright.sync_api import (
    Browser,
    Dialog,
    FilePayload,
    Locator,
    Page,
    Request,
    Response,
    Route,
    expect,
    sync_playwright,
)

from callback_api.auth import new_token

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
MIB = 1024 * 1024
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Tab:
    """A page plus what it did: the uploads it sent, the answers it got, every API call, its
    script errors."""

    page: Page
    puts: list[Request] = field(default_factory=list)
    api: list[Request] = field(default_factory=list)
    answers: list[Response] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Never `playwright install`: the browser is the distribution's. A missing browser is a
    # failure, not a skip: the page would otherwise go untested without anyone noticing.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 900, "height": 900}, locale="en-GB")
    try:
        page = context.new_page()
        tab = Tab(page)
        page.on("request", lambda r: tab.puts.append(r) if r.method == "PUT" else None)
        page.on("request", lambda r: tab.api.append(r) if "/api/" in r.url else None)
        page.on("response", lambda r: tab.answers.append(r) if r.request.method == "PUT" else None)
        page.on("pageerror", lambda exc: tab.script_errors.append(str(exc)))
        yield tab
    finally:
        context.close()


@dataclass
class Guarded:
    """A stack with [auth] enabled and one read-write token for it."""

    stack: LiveStack
    token: str


def _guarded_stack(
    make_stack: Callable[..., LiveStack], tmp_path: Path, *, public_reads: bool = False
) -> Guarded:
    token, digest = new_token()
    tokens = tmp_path / "auth-tokens"
    tokens.write_text(f"{digest} read,write upload-page\n")
    tokens.chmod(0o600)
    auth = {"enabled": True, "tokens_file": str(tokens), "public_reads": public_reads}
    return Guarded(make_stack(auth=auth), token)


@pytest.fixture
def guarded(make_stack: Callable[..., LiveStack], tmp_path: Path) -> Guarded:
    return _guarded_stack(make_stack, tmp_path)


def _png(width: int, height: int) -> bytes:
    """A real PNG (RGB gradient), so the server's sniffing and pixel checks see a true image."""

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 4 % 256, y * 5 % 256, 128))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def _upload_route(url: str) -> bool:
    return "/api/items/" in url and "/media?filename=" in url


def _open_with_paused_clock(page: Page, url: str) -> None:
    """Timers of the page (the retry backoff) then fire only when the test runs the clock."""
    page.clock.install(time=_EPOCH)
    page.goto(url)
    page.clock.pause_at(_EPOCH + timedelta(minutes=1))


def _until(page: Page, check: Callable[[], bool], timeout_ms: int = 10_000) -> bool:
    """Poll while letting Playwright work: its route and request handlers run only inside
    Playwright calls, never during a time.sleep."""
    for _ in range(timeout_ms // 20):
        if check():
            return True
        page.wait_for_timeout(20)
    return check()


def _token_field(page: Page) -> Locator:
    # Exact: the Forget button's name ("Forget access token") contains the words too.
    return page.get_by_label("Access token (optional)", exact=True)


def _authorization(request: Request) -> str | None:
    return request.header_value("authorization")


def _api_calls(tab: Tab) -> list[tuple[str, str, str | None]]:
    """(method, path and query, Authorization) of every API call the page made, in order."""
    return [(r.method, r.url.split("/", 3)[3], _authorization(r)) for r in tab.api]


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def test_two_files_with_unicode_names_upload_and_land_on_disk_and_in_the_catalog(
    stack: LiveStack, tab: Tab
) -> None:
    page = tab.page
    text = "Grüße aus dem Café ☕\n".encode() * 300
    image = _png(64, 48)
    files = [("café ☕.txt", "text/plain", text), ("日本語.png", "image/png", image)]

    page.goto(stack.url + "/")
    expect(page.get_by_test_id("media-status")).to_have_text("No files stored for demo yet.")
    page.get_by_label("Drop files here, or choose them").set_input_files(
        [FilePayload(name=name, mimeType=kind, buffer=data) for name, kind, data in files]
    )

    rows = page.get_by_test_id("upload-row")
    expect(rows).to_have_count(2)
    media_ids = []
    for row, (name, kind, data) in zip(rows.all(), files, strict=True):
        expect(row).to_have_attribute("data-state", "done")
        expect(row.get_by_test_id("upload-name")).to_have_text(name)
        progress = row.get_by_test_id("upload-progress")
        expect(progress).to_have_js_property("value", 100)
        # Set by xhr.upload.onprogress only: the bar was fed by real progress events.
        expect(progress).to_have_attribute("data-sent", str(len(data)))
        expect(row.get_by_test_id("upload-link")).to_have_text(name)
        expect(row.get_by_test_id("upload-result-type")).to_have_text(kind)
        expect(row.get_by_test_id("upload-error")).to_be_hidden()
        media_id = row.get_attribute("data-media-id")
        assert media_id is not None
        expect(row.get_by_test_id("upload-link")).to_have_attribute(
            "href", f"/api/media/{media_id}/content"
        )
        media_ids.append(media_id)

    # One try each, each file with its own key, its name percent-encoded, its declared type.
    assert sorted(r.url for r in tab.puts) == sorted(
        f"{stack.url}/api/items/demo/media?filename={quoted}"
        for quoted in ("caf%C3%A9%20%E2%98%95.txt", "%E6%97%A5%E6%9C%AC%E8%AA%9E.png")
    )
    assert len({r.headers["idempotency-key"] for r in tab.puts}) == 2
    assert sorted(r.headers["content-type"] for r in tab.puts) == ["image/png", "text/plain"]

    assert stack.media_files() == sorted(stack.media_path(i) for i in media_ids)
    assert [sha256_of(stack.media_path(i)) for i in media_ids] == [
        sha256_bytes(text),
        sha256_bytes(image),
    ]
    rows_by_id = {
        r["id"]: (r["item_id"], r["filename"], r["content_type"], r["size"], r["state"])
        for r in stack.rows()
    }
    assert rows_by_id == {
        media_ids[0]: ("demo", "café ☕.txt", "text/plain", len(text), "ready"),
        media_ids[1]: ("demo", "日本語.png", "image/png", len(image), "ready"),
    }
    assert eventually(lambda: stack.temp_files() == [])

    # The list is refreshed once the queue is empty; its links download the stored bytes.
    listed = page.get_by_test_id("media-row")
    expect(listed).to_have_count(2)
    # Oldest first, and the two ran side by side: either may have finished first.
    links = listed.get_by_test_id("media-link")
    assert sorted((a.inner_text(), a.get_attribute("href")) for a in links.all()) == sorted(
        (name, f"/api/media/{i}/content") for i, (name, _, _) in zip(media_ids, files, strict=True)
    )
    expect(page.get_by_test_id("upload-status")).to_have_text("Finished: 2 uploaded.")
    for media_id, (_, _, data) in zip(media_ids, files, strict=True):
        download = page.request.get(f"{stack.url}/api/media/{media_id}/content")
        assert (download.status, sha256_bytes(download.body())) == (
            200,
            sha256_bytes(data),
        )
    _screenshot(page, "upload-page-two-files.png")
    assert tab.script_errors == []


def test_a_file_over_the_limit_shows_the_413_is_not_retried_and_nothing_is_stored(
    make_stack: Callable[..., LiveStack], tab: Tab, tmp_path: Path
) -> None:
    stack = make_stack(uploads={"max_body_size": "1m"})
    big = tmp_path / "too big.bin"
    big.write_bytes(os.urandom(2 * MIB))
    page = tab.page

    page.goto(stack.url + "/")
    page.get_by_label("Drop files here, or choose them").set_input_files(big)

    row = page.get_by_test_id("upload-row")
    expect(row).to_have_attribute("data-state", "error")
    # "error" is final: no retry is waiting.
    [answer] = tab.answers
    assert (answer.status, answer.request.url) == (
        413,
        f"{stack.url}/api/items/demo/media?filename=too%20big.bin",
    )
    # The wording of the limit is the server's, and the page shows it as sent. (Asked again
    # here: Chromium's inspector may already have dropped the body the page read.)
    again = httpx.put(answer.request.url, content=big.read_bytes(), timeout=30)
    assert again.status_code == 413
    detail = again.json()["detail"]
    expect(row.get_by_test_id("upload-error")).to_have_text(f"File too large ({detail})")
    expect(row.get_by_test_id("upload-result")).to_be_hidden()
    assert len(tab.puts) == 1
    assert stack.media_files() == []
    assert stack.rows() == []
    assert eventually(lambda: stack.temp_files() == [])
    expect(page.get_by_test_id("media-status")).to_have_text("No files stored for demo yet.")
    _screenshot(page, "upload-page-too-large.png")
    assert tab.script_errors == []


def test_a_502_while_the_app_is_down_is_retried_with_the_same_key_after_the_backoff(
    stack: LiveStack, tab: Tab
) -> None:
    page = tab.page
    _open_with_paused_clock(page, stack.url + "/")  # the backoff timer runs when the test says so
    stack.stack.stop_app()

    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "later.txt", "mimeType": "text/plain", "buffer": b"stored on the second try\n"}
    )
    row = page.get_by_test_id("upload-row")
    expect(row).to_have_attribute("data-state", "retrying")
    expect(row.get_by_test_id("upload-state")).to_have_text(
        "Server unavailable (HTTP 502) — retrying in 1 s"
    )
    stack.stack.start_app()
    page.clock.run_for(700)  # below the shortest backoff (1 s - 25 % jitter): still waiting
    assert len(tab.puts) == 1
    page.clock.run_for(600)

    expect(row).to_have_attribute("data-state", "done")
    assert [r.status for r in tab.answers] == [502, 201]
    keys = [r.headers["idempotency-key"] for r in tab.puts]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    media_id = row.get_attribute("data-media-id")
    assert media_id is not None
    assert stack.media_files() == [stack.media_path(media_id)]
    assert [r["id"] for r in stack.rows()] == [media_id]
    assert tab.script_errors == []


def test_an_upload_that_keeps_failing_gives_up_after_three_tries(
    stack: LiveStack, tab: Tab
) -> None:
    page = tab.page
    _open_with_paused_clock(page, stack.url + "/")
    stack.stack.stop_app()

    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "never.txt", "mimeType": "text/plain", "buffer": b"never stored\n"}
    )
    row = page.get_by_test_id("upload-row")
    for tries in (1, 2):
        expect(row).to_have_attribute("data-state", "retrying")
        assert len(tab.puts) == tries
        # Up to this try's longest backoff (1 s, then 2 s, +25 % jitter), no further: run_for
        # lets the page's real event loop run between timers, so a 502 answering the retry at
        # once would set the next backoff inside a longer window, and it would fire as well.
        page.clock.run_for(1_250 * tries + 50)
    expect(row).to_have_attribute("data-state", "error")
    expect(row.get_by_test_id("upload-error")).to_have_text(
        "Server unavailable (HTTP 502) (gave up after 3 tries)"
    )
    page.clock.run_for(60_000)
    assert [r.status for r in tab.answers] == [502, 502, 502]
    assert len({r.headers["idempotency-key"] for r in tab.puts}) == 1
    assert stack.media_files() == []
    assert eventually(lambda: stack.temp_files() == [])
    assert tab.script_errors == []


def test_a_retry_after_a_lost_answer_is_answered_with_the_media_already_stored(
    stack: LiveStack, tab: Tab
) -> None:
    page = tab.page
    first_answers: list[int] = []

    def lose_the_first_answer(route: Route) -> None:
        if route.request.method != "PUT" or first_answers:
            route.fallback()
            return
        # The stack stores the file and answers; the page never hears of it.
        first_answers.append(route.fetch().status)
        route.abort("connectionreset")

    page.route(_upload_route, lose_the_first_answer)
    page.goto(stack.url + "/")
    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "once.txt", "mimeType": "text/plain", "buffer": b"stored exactly once\n"}
    )

    row = page.get_by_test_id("upload-row")
    expect(row).to_have_attribute("data-state", "done")
    assert first_answers == [201]
    keys = [r.headers["idempotency-key"] for r in tab.puts]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    [retry] = tab.answers
    assert (retry.status, retry.headers.get("idempotent-replayed")) == (201, "true")
    media_id = row.get_attribute("data-media-id")
    assert media_id is not None
    assert stack.media_files() == [stack.media_path(media_id)]
    assert [r["id"] for r in stack.rows()] == [media_id]
    expect(page.get_by_test_id("media-row")).to_have_count(1)
    assert tab.script_errors == []


def test_cancel_aborts_the_upload_which_is_then_neither_retried_nor_stored(
    stack: LiveStack, tab: Tab
) -> None:
    page = tab.page
    held: list[Route] = []
    # Hold the request, as a slow network would, so that Cancel meets it in flight.
    page.route(_upload_route, lambda route: held.append(route))
    page.goto(stack.url + "/")
    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "cancel me.txt", "mimeType": "text/plain", "buffer": b"not wanted\n"}
    )

    row = page.get_by_test_id("upload-row")
    expect(row).to_have_attribute("data-state", "uploading")
    assert _until(page, lambda: len(held) == 1)
    row.get_by_role("button", name="Cancel cancel me.txt").click()

    expect(row).to_have_attribute("data-state", "cancelled")
    expect(row.get_by_test_id("upload-state")).to_have_text("cancelled")
    expect(page.get_by_test_id("upload-status")).to_have_text("Finished: 0 uploaded, 1 cancelled.")
    page.wait_for_timeout(2500)  # longer than a first backoff: a retry would have been sent
    assert len(tab.puts) == 1
    assert stack.media_files() == []
    assert stack.rows() == []
    assert tab.script_errors == []


def test_a_bad_item_id_is_refused_before_anything_is_sent(stack: LiveStack, tab: Tab) -> None:
    page = tab.page
    page.goto(stack.url + "/")
    page.get_by_label("Item id").fill("../etc")
    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "a.txt", "mimeType": "text/plain", "buffer": b"a\n"}
    )
    expect(page.get_by_test_id("item-id-error")).to_have_text("Not a valid item id.")
    expect(page.get_by_label("Item id")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("upload-status")).to_have_text("Fix the item id before uploading.")
    assert tab.puts == []
    assert tab.script_errors == []


def test_a_token_that_is_not_token68_is_refused_before_anything_is_sent(
    stack: LiveStack, tab: Tab
) -> None:
    page = tab.page
    page.goto(stack.url + "/")
    expect(page.get_by_test_id("media-status")).to_have_text("No files stored for demo yet.")
    _token_field(page).fill("pasted with a space")
    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "a.txt", "mimeType": "text/plain", "buffer": b"a\n"}
    )
    expect(page.get_by_test_id("access-token-error")).to_have_text(
        "Not a valid token: up to 1024 letters, digits and . _ ~ + / -, possibly ending in =, "
        "without spaces."
    )
    expect(_token_field(page)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("upload-status")).to_have_text(
        "Fix the access token before uploading."
    )
    assert page.evaluate("sessionStorage.length") == 0
    assert tab.puts == []
    assert tab.script_errors == []


def test_three_uploads_run_at_once_and_the_rest_wait_their_turn(stack: LiveStack, tab: Tab) -> None:
    page = tab.page
    held: list[Route] = []
    # Hold every upload at the network, then let them through one by one.
    page.route(_upload_route, lambda route: held.append(route))
    page.goto(stack.url + "/")
    page.get_by_label("Drop files here, or choose them").set_input_files(
        [
            FilePayload(name=f"file {n}.txt", mimeType="text/plain", buffer=f"file {n}\n".encode())
            for n in range(5)
        ]
    )

    rows = page.get_by_test_id("upload-row")
    expect(rows).to_have_count(5)
    assert _until(page, lambda: len(held) == 3)
    states = [r.get_attribute("data-state") for r in rows.all()]
    assert states == ["uploading", "uploading", "uploading", "queued", "queued"]
    held[0].continue_()
    expect(rows.nth(0)).to_have_attribute("data-state", "done")
    assert _until(page, lambda: len(held) == 4)
    expect(rows.nth(3)).to_have_attribute("data-state", "uploading")
    assert len(held) == 4
    for route in held[1:]:
        route.continue_()
    assert _until(page, lambda: len(held) == 5)
    held[4].continue_()

    for row in rows.all():
        expect(row).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("media-row")).to_have_count(5)
    assert len(stack.media_files()) == 5
    assert sorted(r["filename"] for r in stack.rows()) == [f"file {n}.txt" for n in range(5)]
    assert tab.script_errors == []


def test_delete_removes_the_file_from_the_list_the_store_and_the_catalog(
    stack: LiveStack, tab: Tab
) -> None:
    page = tab.page
    page.goto(stack.url + "/")
    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "short-lived.txt", "mimeType": "text/plain", "buffer": b"gone soon\n"}
    )
    listed = page.get_by_test_id("media-row")
    expect(listed).to_have_count(1)
    assert len(stack.media_files()) == 1

    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    listed.get_by_role("button", name="Delete short-lived.txt").click()

    expect(listed).to_have_count(0)
    expect(page.get_by_test_id("media-status")).to_have_text("short-lived.txt deleted.")
    assert dialogs == ["Delete short-lived.txt?"]
    assert stack.media_files() == []
    assert stack.rows() == []
    assert tab.script_errors == []


def test_an_upload_without_a_token_shows_the_401_is_not_retried_and_nothing_is_stored(
    guarded: Guarded, tab: Tab
) -> None:
    stack, page = guarded.stack, tab.page
    _open_with_paused_clock(page, stack.url + "/")  # a retry timer could only fire on the clock
    expect(page.get_by_test_id("media-status")).to_have_text(
        "Could not load the list: Access token missing or not accepted: a bearer token is required"
    )
    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "no token.txt", "mimeType": "text/plain", "buffer": b"refused\n"}
    )

    row = page.get_by_test_id("upload-row")
    expect(row).to_have_attribute("data-state", "error")
    # Nginx's own wording: its auth_request refused the upload before storing a body byte.
    expect(row.get_by_test_id("upload-error")).to_have_text(
        "Access token missing or not accepted: a valid bearer token is required"
    )
    expect(row.get_by_test_id("upload-result")).to_be_hidden()
    page.clock.run_for(60_000)  # longer than every backoff: nothing is waiting to retry
    assert [r.status for r in tab.answers] == [401]
    assert [_authorization(r) for r in tab.puts] == [None]
    assert stack.media_files() == []
    assert stack.rows() == []
    assert eventually(lambda: stack.temp_files() == [])
    _screenshot(page, "upload-page-no-token.png")
    assert tab.script_errors == []


def test_with_the_token_two_files_upload_land_on_disk_and_are_listed(
    guarded: Guarded, tab: Tab
) -> None:
    stack, page = guarded.stack, tab.page
    text = b"sent with a bearer token\n" * 100
    image = _png(32, 24)
    files = [("notes.txt", "text/plain", text), ("pixels.png", "image/png", image)]

    page.goto(stack.url + "/")
    expect(page.get_by_test_id("media-status")).to_contain_text("Access token missing")
    _token_field(page).fill(guarded.token)
    expect(page.get_by_test_id("access-token-state")).to_have_text("A token is set for this tab.")
    page.get_by_label("Drop files here, or choose them").set_input_files(
        [FilePayload(name=name, mimeType=kind, buffer=data) for name, kind, data in files]
    )

    rows = page.get_by_test_id("upload-row")
    expect(rows).to_have_count(2)
    media_ids = []
    for row in rows.all():
        expect(row).to_have_attribute("data-state", "done")
        media_id = row.get_attribute("data-media-id")
        assert media_id is not None
        media_ids.append(media_id)
    expect(page.get_by_test_id("upload-status")).to_have_text("Finished: 2 uploaded.")
    listed = page.get_by_test_id("media-row")
    expect(listed).to_have_count(2)
    assert sorted(listed.get_by_test_id("media-link").all_inner_texts()) == [
        "notes.txt",
        "pixels.png",
    ]

    assert [sha256_of(stack.media_path(i)) for i in media_ids] == [
        sha256_bytes(text),
        sha256_bytes(image),
    ]
    assert stack.media_files() == sorted(stack.media_path(i) for i in media_ids)
    assert {r["id"]: (r["filename"], r["size"], r["state"]) for r in stack.rows()} == {
        media_ids[0]: ("notes.txt", len(text), "ready"),
        media_ids[1]: ("pixels.png", len(image), "ready"),
    }
    assert eventually(lambda: stack.temp_files() == [])
    # The first list was asked for before the token was entered; every call since carries it.
    bearer = f"Bearer {guarded.token}"
    calls = _api_calls(tab)
    assert calls[0] == ("GET", "api/items/demo/media?limit=50", None)
    assert sorted(calls[1:]) == [
        ("GET", "api/items/demo/media?limit=50", bearer),
        ("PUT", "api/items/demo/media?filename=notes.txt", bearer),
        ("PUT", "api/items/demo/media?filename=pixels.png", bearer),
    ]
    assert tab.script_errors == []


def test_a_download_link_fetches_the_stored_bytes_with_the_token(
    guarded: Guarded, tab: Tab
) -> None:
    stack, page = guarded.stack, tab.page
    image = _png(200, 150)
    bearer = f"Bearer {guarded.token}"
    stored = httpx.put(
        f"{stack.url}/api/items/demo/media?filename=photo.png",
        content=image,
        headers={"Authorization": bearer, "Content-Type": "image/png"},
        timeout=30,
    )
    assert stored.status_code == 201
    media_id = stored.json()["id"]
    content = f"/api/media/{media_id}/content"
    # The plain link alone is refused: without the page's help a click would save a 401.
    assert page.request.get(stack.url + content).status == 401

    page.goto(stack.url + "/")
    _token_field(page).fill(guarded.token)
    _token_field(page).press("Tab")  # leaving the field asks for the list again
    link = page.get_by_test_id("media-link")
    expect(link).to_have_text("photo.png")
    expect(link).to_have_attribute("href", content)
    with page.expect_download() as caught:
        link.click()
    download = caught.value

    assert download.url.startswith(f"blob:{stack.url}/")
    assert download.suggested_filename == "photo.png"
    assert sha256_of(Path(download.path())) == sha256_bytes(image)
    expect(page.get_by_test_id("media-status")).to_have_text("photo.png downloaded.")
    expect(link).not_to_have_attribute("aria-busy", "true")
    assert _api_calls(tab) == [
        ("GET", "api/items/demo/media?limit=50", None),
        ("GET", "api/items/demo/media?limit=50", bearer),
        ("GET", content.lstrip("/"), bearer),
    ]
    assert tab.script_errors == []


def test_with_public_reads_a_download_stays_a_plain_link(
    make_stack: Callable[..., LiveStack], tmp_path: Path, tab: Tab
) -> None:
    guarded = _guarded_stack(make_stack, tmp_path, public_reads=True)
    stack, page = guarded.stack, tab.page
    page.goto(stack.url + "/")
    expect(page.get_by_test_id("media-status")).to_have_text("No files stored for demo yet.")
    _token_field(page).fill(guarded.token)
    page.get_by_label("Drop files here, or choose them").set_input_files(
        {"name": "open.txt", "mimeType": "text/plain", "buffer": b"anyone may read this\n"}
    )
    link = page.get_by_test_id("media-link")
    expect(link).to_have_text("open.txt")
    href = link.get_attribute("href")
    assert href is not None

    with page.expect_download() as caught:
        link.click()
    download = caught.value

    # Streamed by the browser from the server, not held in the page's memory.
    assert download.url == stack.url + href
    assert Path(download.path()).read_bytes() == b"anyone may read this\n"
    assert tab.script_errors == []


def test_the_token_lives_in_this_tabs_session_storage_until_forget(
    guarded: Guarded, tab: Tab
) -> None:
    stack, page = guarded.stack, tab.page
    field = _token_field(page)
    page.goto(stack.url + "/")
    expect(field).to_have_attribute("type", "password")
    expect(field).to_have_attribute("autocomplete", "off")
    expect(page.get_by_test_id("access-token-state")).to_have_text("No token set.")
    expect(page.get_by_role("button", name="Forget access token")).to_be_disabled()
    field.fill(guarded.token)

    stored = "sessionStorage.getItem('landing.accessToken')"
    assert page.evaluate(stored) == guarded.token
    assert page.evaluate("localStorage.length") == 0
    # Another tab of the same browser does not get it.
    other = page.context.new_page()
    other.goto(stack.url + "/")
    expect(_token_field(other)).to_have_value("")
    other.close()

    tab.api.clear()
    page.reload()
    expect(field).to_have_value(guarded.token)
    expect(page.get_by_test_id("media-status")).to_have_text("No files stored for demo yet.")
    # Opened with a stored token, the page asks once, on purpose without it, whether reads are
    # open (a plain link would do); they are not, so downloads will go through fetch.
    bearer = f"Bearer {guarded.token}"
    assert _until(page, lambda: len(tab.api) == 2)
    assert sorted(_api_calls(tab), key=str) == sorted(
        [
            ("GET", "api/items/demo/media?limit=1", None),
            ("GET", "api/items/demo/media?limit=50", bearer),
        ],
        key=str,
    )
    expect(page.get_by_test_id("access-token-state")).to_have_text("A token is set for this tab.")
    _screenshot(page, "upload-page-token-set.png")

    page.get_by_role("button", name="Forget access token").click()
    expect(field).to_have_value("")
    expect(field).to_be_focused()
    expect(page.get_by_test_id("access-token-state")).to_have_text("No token set.")
    expect(page.get_by_test_id("upload-status")).to_have_text("Access token forgotten.")
    expect(page.get_by_test_id("media-status")).to_contain_text("Access token missing")
    assert page.evaluate(stored) is None
    assert page.evaluate("localStorage.length") == 0
    assert tab.script_errors == []
