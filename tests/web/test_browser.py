"""A real browser (the system's Chromium, driven by Playwright) through the desk's most common task.

Log in, filter to the rejected message, read its error, rebuild it with a reason, see the new message
and the audit entry. Screenshots of the dashboard and the message page land in
``test-output/screenshots/`` for people reviewing the UI. Without /usr/bin/chromium the test fails
(CI installs it); it never downloads a browser.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from tests.web.conftest import PASSWORD, Filled

pytestmark = pytest.mark.rabbitmq

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn in a thread on 127.0.0.1 and a free port."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_desk_finds_a_rejected_message_and_rebuilds_it(base_url: str, filled: Filled) -> None:
    """An admin logs in, filters to the rejected message, reads E35, rebuilds it, and finds the audit entry."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install the distribution's chromium package", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    old = filled.rejected.msg_id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{base_url}/")
        expect(page).to_have_url(f"{base_url}/login?next=/")
        page.get_by_label("Brukernavn").fill("admin")
        page.get_by_label("Passord").fill(PASSWORD)
        page.get_by_role("button", name="Logg inn").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

        page.get_by_role("link", name="Meldinger").click()
        page.locator("select[name=state]").select_option("rejected_by_receiver")
        page.get_by_role("button", name="Filtrer").click()
        expect(page.locator("table.list tbody tr")).to_have_count(1)
        page.locator(f'a[href="/messages/{old}"]').click()

        expect(page.locator(".apprec-errors")).to_contain_text("E35")
        error_text = page.locator(".apprec-errors li").first.inner_text()
        assert len(error_text) > len("E35 ")  # the code comes with its meaning in words
        page.screenshot(path=str(SCREENSHOTS / "message.png"), full_page=True)

        rebuild = page.locator("#replay-rebuild")
        rebuild.locator("input[name=reason]").fill("E35 - pasientdata rettet, INC-4711")
        rebuild.get_by_role("button", name="Rebuild").click()
        expect(page.locator(".flash")).to_contain_text("rebuild")
        expect(page.locator(f'a[href="/messages/{old}"]').first).to_be_visible()  # ConversationRef
        new_id = page.url.rsplit("/", 1)[1]
        assert new_id != old
        page.screenshot(path=str(SCREENSHOTS / "replayed.png"), full_page=True)

        page.get_by_role("link", name="Audit").click()
        entry = page.locator("#audit tbody tr", has_text="INC-4711").first
        expect(entry).to_contain_text("replay")
        expect(entry).to_contain_text("admin")
        browser.close()
    assert filled.message(new_id).conversation_ref == old
