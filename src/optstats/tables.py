"""Result tables for the chapters, as Markdown.

A chapter shows a table of numbers with
``display(Markdown(tables.markdown(headers, rows)))``: the book renders it as
an HTML table that fits the text column (a printed fixed-width table does
not), and the stored output is plain text that nbval compares exactly.
Formatting only: the numbers are computed by the caller.
"""

from __future__ import annotations


def markdown(headers, rows) -> str:
    """A Markdown table: ``headers`` a sequence of column titles, ``rows`` a
    sequence of rows of already formatted strings (one per column)."""
    headers = [str(h) for h in headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [str(c) for c in row]
        if len(cells) != len(headers):
            raise ValueError(f"rows must have {len(headers)} cells like headers, got {len(cells)}: {cells!r}")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
