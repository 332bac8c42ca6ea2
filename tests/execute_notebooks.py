"""Re-execute chapters in place and store their outputs (`make notebooks`).

Outputs are the regression record that nbval checks, so they are made only
here: a fresh kernel per notebook, cells top to bottom, no timing metadata.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def pin_numerics() -> None:
    """Give the kernels the settings of tests/numerics.env (the Makefile's too),
    unless the environment already sets them: the same digits on every machine."""
    for line in (Path(__file__).parent / "numerics.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            os.environ.setdefault(key, value)


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    nbformat.write(nb, path)
    print(f"executed {path}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tests/execute_notebooks.py NOTEBOOK.ipynb [...]")
    pin_numerics()
    for arg in sys.argv[1:]:
        execute(Path(arg))
