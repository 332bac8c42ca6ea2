"""Fixtures of the browser test: the built site served on localhost, and
Debian's Chromium driven headless by Playwright.

The test needs `make book` to have run. Without Chromium it is skipped with
the install command, except where OPTSTATS_REQUIRE_BROWSER=1 (set by
.ci/run): there its absence fails the run.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest
from pagecheck import PHONE, is_local

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# Chromium's own background traffic (updates, sync, Google lookups) is not the
# book's; these flags keep it quiet so every request the test sees is the page's.
CHROMIUM_ARGS = [
    "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "book" / "intro.html").is_file():
        pytest.fail(f"no built book under {SITE}: run `make book` first")
    return SITE


@pytest.fixture(scope="session")
def base_url(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        message = (
            f"Chromium not found at {CHROMIUM}, so the browser test of the built "
            "HTML (tests/browser) did not run. Install it with "
            "`sudo apt-get install chromium` (Debian) or point CHROMIUM= at a "
            "Chromium binary."
        )
        if os.environ.get("OPTSTATS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


#: page -> the share of its height that is visible code (filled by test_html)
CODE_SHARE: dict[str, float] = {}
#: what the book aims for: at most a third of a page is code a reader sees
CODE_SHARE_AIM = 1 / 3


def pytest_terminal_summary(terminalreporter):
    if not CODE_SHARE:
        return
    lines = [f"{share:6.1%}  {name}" + ("  (above the aim)" if share > CODE_SHARE_AIM else "")
             for name, share in sorted(CODE_SHARE.items(), key=lambda kv: -kv[1])]
    terminalreporter.write_sep("-", f"visible code, share of the page height (aim: at most {CODE_SHARE_AIM:.0%})")
    for line in lines:
        terminalreporter.write_line(line)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "code-share.txt").write_text("\n".join(lines) + "\n")


def _offline(ctx):
    # Nothing may leave the machine: requests elsewhere are recorded, then refused.
    ctx.route(
        "**/*",
        lambda route: route.continue_() if is_local(route.request.url) else route.abort(),
    )


@pytest.fixture
def phone(browser):
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True)
    _offline(ctx)
    yield ctx
    ctx.close()


@pytest.fixture
def context(browser):
    # A desktop reader's window: the theme shows its sidebars at this width.
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    _offline(ctx)
    yield ctx
    ctx.close()
