"""The web page in a real headless Chromium (Debian's ``chromium``, driven by Playwright; never
Playwright's own browser download): a clinician fills the form for a muscle-predominant patient,
submits, sees rituximab first with its dose, expands it and reads the quote. A screenshot is
kept under the test's tmp folder."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest
from service_support import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server_url():
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server_url):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get when it can)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            yield page
        finally:
            browser.close()


def test_clinician_fills_the_form_and_reads_the_first_option(page, server_url, tmp_path):
    page.goto(server_url + "/")
    page.get_by_label("Birth date").fill("2012-02-03")
    page.get_by_label("Sex").select_option("male")
    page.get_by_label("Assess as of").fill("2026-11-01")
    page.get_by_label("Weight (kg)").fill("42.5")
    page.get_by_label("Height (cm)").fill("152")
    page.get_by_label("measured on").fill("2026-10-28")
    page.locator("#present-MuscleWeakness").check()
    page.locator("#predominant-MuscleWeakness").check()
    page.get_by_label("Drug 1").select_option(label="baricitinib")
    page.locator("#start0").fill("2025-11-01")
    page.locator("#end0").fill("2026-09-20")
    page.locator("#outcome0").select_option(label="loss of response")
    page.get_by_label("Drug 2").select_option(label="methotrexate (MTX)")
    page.locator("#start1").fill("2023-06-01")
    page.locator("#outcome1").select_option(label="ongoing")
    for key in ("HepatitisB", "HepatitisC"):
        page.locator(f"#screen-{key}").select_option(label="negative")
        page.locator(f"#screenDate-{key}").fill("2026-10-01")
    page.keyboard.press("Tab")
    page.get_by_role("button", name="Recommend").click()
    page.wait_for_selector("li.option")

    first = page.locator("li.option").first
    assert first.locator(".label").inner_text() == "rituximab"
    assert first.locator(".rank").inner_text() == "#1"
    assert "502.3 mg" in first.locator(".dose").first.inner_text()
    quote = first.locator("blockquote.quote").first
    assert not quote.is_visible()  # collapsed until the clinician expands it
    first.locator("summary").focus()
    page.keyboard.press("Enter")  # keyboard: <details> opens with Enter
    assert quote.is_visible()
    assert "Particularly effective for muscle involvement and ILD" in quote.inner_text()
    shot = tmp_path / "web-page-rituximab.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_every_form_field_has_a_label(page, server_url):
    page.goto(server_url + "/")
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.type !== 'hidden')
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !el.getAttribute('aria-labelledby'))
        .map(el => el.id || el.name)""")
    assert unlabelled == []
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server_url + "/")
    assert requests and all(url.startswith(server_url) for url in requests)  # nothing from a CDN
