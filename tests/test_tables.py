import pytest

from optstats import tables


def test_markdown_table():
    text = tables.markdown(["a", "b"], [["1", "x|y"], [2, 3.5]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |", "| 2 | 3.5 |"]


def test_row_length_must_match():
    with pytest.raises(ValueError, match="rows must have 2 cells"):
        tables.markdown(["a", "b"], [["1"]])
