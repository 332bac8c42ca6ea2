"""What the browser test checks on one page of the built book.

`check_page` loads a page in headless Chromium and returns a list of problems
(empty when the page is fine), so the test of the real book and the self-test
on a deliberately broken page share one definition of "broken".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
#: how long a page may take to load and typeset. The longest chapters load in
#: a few seconds; one hit Playwright's default 30 s on a busy 2-core machine, so
#: the limit is generous: it guards against a hang, not against slowness.
PAGE_TIMEOUT_MS = 120_000
#: the best-effort wait for late requests once the page is loaded and typeset
NETWORK_IDLE_MS = 15_000
#: schemes that never leave the machine
LOCAL_SCHEMES = {"data", "blob", "about"}

#: TeX that MathJax did not turn into math: a control word, or a math delimiter,
#: in the visible text once code, scripts and rendered math are set aside.
RAW_TEX = re.compile(r"\\[A-Za-z]{2,}|\\[()\[\]]|\$\$")

#: the visible text of a page minus code, scripts and rendered math
VISIBLE_PROSE_JS = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll(
    'pre, code, script, style, textarea, mjx-container, .highlight, .MathJax'
  ).forEach(el => el.remove());
  return body.innerText;
}"""

MATH_STATE_JS = """() => ({
  spans: document.querySelectorAll('.math').length,
  unrendered: Array.from(document.querySelectorAll('.math'))
      .filter(el => !el.querySelector('mjx-container'))
      .map(el => el.textContent.slice(0, 80)),
  errors: Array.from(document.querySelectorAll('mjx-merror'))
      .map(el => el.getAttribute('data-mjx-error') || el.textContent.slice(0, 80)),
})"""

IMAGES_JS = """() => Array.from(document.images).map(img => ({
  src: img.getAttribute('src'),
  ok: img.complete && img.naturalWidth > 0 && img.naturalHeight > 0,
  alt: img.getAttribute('alt') || '',
  figure: !!img.closest('div.cell_output, figure'),
  natural: img.naturalWidth,
  shown: img.getBoundingClientRect().width,
}))"""

#: a figure's pixels per displayed pixel, at least: 2 for high-density
#: screens (a figure may also be shown narrower than it was drawn)
FIGURE_DENSITY = 2.0
#: an alt text that is a file name or path says nothing of what a figure shows
PATH_ALT = re.compile(r"(^|/)[\w.-]+\.(png|jpe?g|svg|gif)$|_images/", re.IGNORECASE)

#: the share of the article's height taken by code a reader sees (visible
#: input cells), measured at the desktop width
CODE_SHARE_JS = """() => {
  const article = document.querySelector('article') || document.body;
  let code = 0;
  for (const el of article.querySelectorAll('div.cell_input')) {
    if (el.offsetParent !== null) code += el.getBoundingClientRect().height;
  }
  const total = article.getBoundingClientRect().height;
  return total > 0 ? code / total : 0;
}"""

LINKS_JS = """() => Array.from(document.querySelectorAll('a[href]'))
    .map(a => a.href)"""

#: what a reader would have to scroll sideways to read, at the page's viewport:
#: a display equation, a visible code block or a cell output whose content is
#: wider than its box (scrollWidth > clientWidth), or whose box sticks out of
#: the article's text column. Hidden elements (collapsed cells) have no box.
WIDE_JS = """(prose_only) => {
  const article = document.querySelector('article') || document.body;
  const right = article.getBoundingClientRect().right;
  const kinds = [
    ['display equation', 'div.math, mjx-container[display="true"]'],
    ['code block', 'div.cell_input pre, div.highlight pre'],
    ['output', 'div.cell_output pre, div.cell_output .output'],
  ];
  // a table: wider than its (scrolling) container, or than the column
  const tables = [];
  for (const el of document.querySelectorAll('article table')) {
    if (el.offsetParent === null) continue;
    if (!prose_only || !el.closest('div.cell_output')) tables.push(el);
  }
  const wide = [];
  for (const [kind, selector] of kinds) {
    for (const el of document.querySelectorAll(selector)) {
      if (el.offsetParent === null) continue;
      const box = el.getBoundingClientRect();
      const over = Math.max(el.scrollWidth - el.clientWidth, box.right - right);
      if (over > 2) {
        const text = (el.getAttribute('data-latex') || el.textContent || '')
          .replace(/\\s+/g, ' ').trim().slice(0, 60);
        wide.push(`${kind} ${Math.round(over)}px wider than its column: ${text}`);
      }
    }
  }
  for (const el of tables) {
    const box = el.getBoundingClientRect();
    const holder = el.parentElement;
    const over = Math.max(el.scrollWidth - holder.clientWidth, box.right - right);
    if (over > 2) {
      const text = (el.textContent || '').replace(/\\s+/g, ' ').trim().slice(0, 60);
      wide.push(`table ${Math.round(over)}px wider than its column: ${text}`);
    }
  }
  if (prose_only) return wide.filter(w => w.startsWith('table'));
  return wide;
}"""

#: a stored execute_result rendered as plain text: the repr of a cell's last
#: expression (True, np.float64(...)), which the reader should never see
BARE_REPR_JS = """() => Array.from(document.querySelectorAll(
    'div.cell_output div.output.text_plain'))
  .map(el => el.textContent.trim().slice(0, 60))"""


@dataclass
class PageReport:
    url: str
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    math_count: int = 0
    image_count: int = 0
    code_share: float = 0.0


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOCAL_HOSTS


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


_ID_CACHE: dict[Path, set[str]] = {}


def anchors_of(path: Path) -> set[str]:
    if path not in _ID_CACHE:
        parser = _Ids()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        _ID_CACHE[path] = parser.ids
    return _ID_CACHE[path]


def broken_internal_links(links: list[str], base_url: str, site: Path) -> list[str]:
    """Links to the served site whose file or #anchor does not exist."""
    broken = []
    for link in dict.fromkeys(links):
        if not link.startswith(base_url):
            continue
        target, fragment = urldefrag(link)
        rel = unquote(urlsplit(target).path).lstrip("/")
        path = site / rel
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            broken.append(f"{link} (no file {rel or '/'})")
        elif fragment and path.suffix == ".html" and unquote(fragment) not in anchors_of(path):
            broken.append(f"{link} (no anchor #{fragment})")
    return broken


def check_page(context, url: str, *, screenshot: Path | None = None) -> PageReport:
    """Load `url` in a new tab of `context` and list what a reader would see as broken."""
    report = PageReport(url)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and errors.append(
        f"console error: {msg.text} ({msg.location.get('url', '')})"))
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("request", lambda req: report.requests.append(req.url))
    page.on("requestfailed", lambda req: is_local(req.url) and errors.append(
        f"request failed: {req.url} ({req.failure})"))
    page.on("response", lambda resp: resp.status >= 400 and errors.append(
        f"HTTP {resp.status}: {resp.url}"))
    try:
        page.goto(url, wait_until="load")
        # lazily loaded images count too: ask for all of them now
        page.evaluate("() => document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        has_mathjax = page.evaluate("() => typeof window.MathJax !== 'undefined'")
        if has_mathjax:
            page.wait_for_function(
                "() => window.MathJax.startup && window.MathJax.startup.promise", timeout=PAGE_TIMEOUT_MS
            )
            page.evaluate("() => window.MathJax.startup.promise")
        # every image loaded or failed (a broken one is reported below) ...
        page.wait_for_function(
            "() => Array.from(document.images).every(i => i.complete)", timeout=PAGE_TIMEOUT_MS
        )
        # ... then a best-effort wait for late requests: on a busy machine Chromium
        # sometimes keeps a connection open and "network idle" never comes, which
        # is no defect of the page (the requests seen so far are all checked)
        try:
            page.wait_for_load_state("networkidle", timeout=NETWORK_IDLE_MS)
        except PlaywrightTimeoutError:
            pass

        math = page.evaluate(MATH_STATE_JS)
        report.math_count = math["spans"]
        if math["spans"] and not has_mathjax:
            errors.append(f"{math['spans']} math elements but MathJax is not loaded")
        errors += [f"math not rendered: {tex!r}" for tex in math["unrendered"]]
        errors += [f"MathJax error: {err!r}" for err in math["errors"]]
        prose = page.evaluate(VISIBLE_PROSE_JS)
        errors += [f"raw TeX in the text: {m!r}" for m in sorted(set(RAW_TEX.findall(prose)))]

        images = page.evaluate(IMAGES_JS)
        report.image_count = len(images)
        errors += [f"image not loaded: {img['src']}" for img in images if not img["ok"]]
        for img in images:
            if not (img["ok"] and img["figure"]):
                continue
            if not img["alt"].strip() or PATH_ALT.search(img["alt"].strip()):
                errors.append(f"figure without an alt text saying what it shows: {img['src']} (alt {img['alt']!r})")
            if img["natural"] < FIGURE_DENSITY * img["shown"] - 1:
                errors.append(f"figure drawn at {img['natural'] / img['shown']:.2f}x its displayed width, "
                              f"below {FIGURE_DENSITY}x: {img['src']}")

        errors += page.evaluate(WIDE_JS, False)
        report.code_share = page.evaluate(CODE_SHARE_JS)
        errors += [f"bare repr in an output: {t!r}" for t in page.evaluate(BARE_REPR_JS)]

        report.links = page.evaluate(LINKS_JS)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    report.problems = errors + [
        f"request to another host: {u}" for u in report.requests if not is_local(u)
    ]
    return report


#: a phone's viewport (CSS pixels)
PHONE = {"width": 390, "height": 844}


def prose_tables_too_wide(context, url: str) -> list[str]:
    """At a phone's width (``context`` opened with :data:`PHONE`): the prose
    tables (outside cell outputs) that do not fit the column. Numeric result
    tables in outputs may scroll sideways on a phone."""
    page = context.new_page()
    try:
        page.goto(url, wait_until="load")
        return page.evaluate(WIDE_JS, True)
    finally:
        page.close()
