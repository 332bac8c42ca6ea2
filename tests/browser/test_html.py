"""The book as readers get it: every page of the built HTML, in headless
Chromium, offline. See pagecheck.py for what counts as broken; the last test
shows that those checks do catch a broken page."""

from __future__ import annotations

import re

import pytest
import yaml
from PIL import Image
from conftest import CODE_SHARE, ROOT, SCREENSHOTS, SITE
from pagecheck import broken_internal_links, check_page, prose_tables_too_wide

PAGES = sorted(
    p.relative_to(SITE).as_posix()
    for p in SITE.rglob("*.html")
    if not p.relative_to(SITE).parts[0].startswith("_") and p.name != "index.html"
)
#: the four posts the book retells (../shared/seeds)
SOURCE_POSTS = ("11267", "11307", "11301", "10563")
CHAPTERS = [
    c["file"]
    for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
    if part["caption"] == "Chapters"
    for c in part["chapters"]
]


def test_site_has_pages():
    # Guards the parametrisation below against an empty or missing build.
    assert "book/intro.html" in PAGES, f"no built book under {SITE}: run `make book` first"


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_offline(name, site, base_url, context):
    shot = SCREENSHOTS / (name.removesuffix(".html").replace("/", "__") + ".png")
    report = check_page(context, base_url + name, screenshot=shot)
    CODE_SHARE[name] = report.code_share
    problems = report.problems + [
        f"broken link: {link}" for link in broken_internal_links(report.links, base_url, site)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", PAGES)
def test_prose_tables_fit_a_phone(name, base_url, phone):
    # at 390 px the prose tables (errata, the intro's map, notation) read without sideways scrolling
    wide = prose_tables_too_wide(phone, base_url + name)
    assert not wide, "\n".join(wide)


def test_root_redirects_to_the_landing_page(base_url, context):
    page = context.new_page()
    page.goto(base_url)
    page.wait_for_url(re.compile(r".*/book/intro\.html$"))
    links = " ".join(page.locator("article a[href]").evaluate_all("els => els.map(a => a.href)"))
    for post in SOURCE_POSTS:
        assert f"spaces.ac.cn/archives/{post}" in links, f"landing page does not link post {post}"


#: the chapter opening: what comes before the first numbered section
OPENING_LINKS_JS = """() => {
  const top = document.querySelector('article section');
  const hrefs = [];
  for (const child of top.children) {
    if (child.tagName === 'SECTION') break;
    child.querySelectorAll('a[href]').forEach(a => hrefs.push(a.href));
  }
  return hrefs;
}"""


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_opening_links_post_and_notebook(name, base_url, context):
    """Each chapter offers its notebook for download and, if it retells a
    post, links that post in its opening (the notation page retells none)."""
    page = context.new_page()
    page.goto(base_url + name + ".html")
    if (ROOT / (name + ".ipynb")).is_file():
        assert page.locator(f'a[href$="_sources/{name}.ipynb"]').count() == 1, "no download button"
    if name != "book/notation":
        opening = page.evaluate(OPENING_LINKS_JS)
        assert any("spaces.ac.cn/archives/" in h for h in opening), opening


def test_search_finds_a_chapter_word(base_url, context):
    page = context.new_page()
    page.goto(base_url + "search.html?q=arcsine")
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=30_000)
    hrefs = results.evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert any("weight-rms" in h for h in hrefs), hrefs


def test_checks_catch_a_broken_page(site, base_url, context):
    """A copy of a real page with an undefined macro, unbalanced TeX, raw TeX, a dead link, a dead
    anchor, a missing image, an outside request, a display equation and a code block wider than the
    text column, and a bare repr in an output: each must be reported."""
    real = (site / "book" / "notation.html").read_text()
    # a real figure with its file name as alt, and shown at its drawn width (1x density):
    # the narrowest, so that the column's max-width cannot shrink it to 2x and hide the case
    def width(path):
        with Image.open(path) as im:
            return im.width

    figure = min((p for p in (site / "_images").glob("*.png")), key=lambda p: (width(p), p.name)).name
    with Image.open(site / "_images" / figure) as im:
        size = im.width // 4
    broken = real.replace(
        "</article>",
        r'<p><span class="math notranslate nohighlight">\(\frac{1}{2}\notamacro\)</span></p>'
        r'<p><span class="math notranslate nohighlight">\(\frac{1}{2\)</span></p>'
        r"<p>leaked \alpha in prose</p>"
        '<a href="no-such-page.html">dead</a><a href="intro.html#no-such-anchor">dead anchor</a>'
        '<img src="../_images/no-such-figure.png" alt="missing">'
        '<script>fetch("https://cdn.example.org/x.js").catch(() => {});</script>'
        r'<div class="math notranslate nohighlight">\[' + "+".join(["x_{%d}" % i for i in range(120)])
        + r"\]</div>"
        '<div class="cell_input"><div class="highlight"><pre>' + "wide_code = 1" + " + 1" * 80 + "</pre></div></div>"
        '<div class="cell_output"><div class="output text_plain"><pre>True</pre></div></div>'
        f'<div class="cell_output"><img src="../_images/{figure}" alt="{figure}" style="width:{size}px"></div>'
        f'<div class="cell_output"><img src="../_images/{figure}" alt="a curve" style="width:{size * 4}px"></div>'
        "<table><tr>" + "<td>a_wide_table_cell</td>" * 60 + "</tr></table>"
        "</article>",
        1,
    )
    assert broken != real
    url = base_url + "book/__broken__.html"
    context.route(url, lambda route: route.fulfill(body=broken, content_type="text/html"))
    report = check_page(context, url)
    problems = report.problems + [
        f"broken link: {link}" for link in broken_internal_links(report.links, base_url, site)
    ]
    text = "\n".join(problems)
    for expected in (
        "MathJax error: 'Undefined control sequence \\\\notamacro'",
        "math not rendered: '\\\\(\\\\frac{1}{2\\\\)'", "raw TeX in the text: '\\\\alpha'", "no-such-page.html (no file",
        "no anchor #no-such-anchor", "image not loaded: ../_images/no-such-figure.png",
        "request to another host: https://cdn.example.org/x.js",
        "display equation", "code block", "wider than its column: wide_code",
        "bare repr in an output: 'True'",
        "table", "wider than its column: a_wide_table_cell",
        f"figure without an alt text saying what it shows: ../_images/{figure}",
        f"x its displayed width, below 2.0x: ../_images/{figure}",
    ):
        assert expected in text, f"{expected!r} not reported; got:\n{text}"
