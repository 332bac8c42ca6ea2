"""Make the built HTML work with no network.

Readers open the book offline and CI has no internet, so the math renderer
must ship with the HTML, and nothing may point at a CDN. `make setup` installs the pinned MathJax from the npm
registry (package.json, package-lock.json) into node_modules/; this extension
points Sphinx at a copy under _static/mathjax/ and makes that copy after the
build. The whole es5/ tree is copied because MathJax loads some components
(menu, accessibility, fonts) lazily, relative to its own script.

Jupyter Book always loads sphinx-thebe, which puts a loader for thebe (from
unpkg.com) on every page, twice, so the second copy throws a redeclaration
error in the console. The book has no live-code button, so its scripts are
dropped from every page.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

ENTRY = "tex-mml-chtml.js"
STATIC_SUBDIR = "mathjax"


def _es5_dir(app: Sphinx) -> Path:
    return Path(app.confdir) / "node_modules" / "mathjax" / "es5"


def _check_installed(app: Sphinx, config) -> None:
    entry = _es5_dir(app) / ENTRY
    if not entry.is_file():
        raise ExtensionError(
            f"MathJax is not installed: {entry} is missing. Run `make setup` "
            "(or `npm ci` in the repository root) so the book can serve its "
            "math renderer locally instead of from a CDN."
        )
    # A relative mathjax_path is resolved by Sphinx against _static/.
    config.mathjax_path = f"{STATIC_SUBDIR}/{ENTRY}"


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / STATIC_SUBDIR
    shutil.copytree(_es5_dir(app), target, dirs_exist_ok=True)


def _is_thebe(asset) -> bool:
    name = getattr(asset, "filename", None) or ""
    body = getattr(asset, "attributes", {}).get("body", "")
    return "thebe" in name or "THEBE" in body


def _drop_thebe(app: Sphinx, pagename, templatename, context, doctree) -> None:
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not _is_thebe(asset)]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _check_installed)
    app.connect("html-page-context", _drop_thebe)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
