"""Re-execute chapters in place and store their outputs (`make notebooks`).

Outputs are the regression record that nbval checks, so they are made only
here: a fresh kernel per notebook, cells top to bottom, no timing metadata.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


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
    for arg in sys.argv[1:]:
        execute(Path(arg))
