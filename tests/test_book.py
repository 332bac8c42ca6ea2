"""The book's structure: every page in the table of contents exists, and every
chapter's stored outputs are a complete, in-order, error-free run (nbval then
checks that they reproduce)."""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


@pytest.mark.parametrize("name", toc_files())
def test_toc_entry_exists(name):
    assert any((ROOT / f"{name}{ext}").exists() for ext in (".md", ".ipynb")), name


def test_every_chapter_is_in_the_toc():
    listed = set(toc_files())
    for nb in CHAPTERS:
        assert f"book/{nb.stem}" in listed, nb.name


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_stored_outputs_are_one_clean_run(path):
    nb = json.loads(path.read_text())
    counts = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        counts.append(cell["execution_count"])
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"stored error in {path.name}"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), f"stderr in {path.name}"
    assert counts == list(range(1, len(counts) + 1)), "cells not run top to bottom in one kernel"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_bare_repr_in_stored_outputs(path):
    # a cell ending in an expression stores its repr (True, np.float64(...)) and the reader
    # sees it; figures and displayed math carry another mime type besides text/plain
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "execute_result":
                assert set(out["data"]) - {"text/plain"}, (
                    f"{path.name}, cell {cell.get('id')}: bare repr {''.join(out['data']['text/plain'])[:60]!r}"
                )
