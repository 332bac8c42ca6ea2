"""Give every figure an alt text that says what it shows.

myst-nb renders a cell's figure with the image's file path as its ``alt``,
which tells a reader with a screen reader (or a broken image) nothing. A
figure of this book always has a caption saying what it shows (cell metadata
``mystnb: figure: caption``), so an image without an alt of its own takes its
figure's caption as plain text.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform


class FigureAlt(SphinxTransform):
    default_priority = 900

    def apply(self, **kwargs) -> None:
        for figure in self.document.findall(nodes.figure):
            captions = list(figure.findall(nodes.caption))
            if not captions:
                continue
            text = " ".join(captions[0].astext().split())
            for image in figure.findall(nodes.image):
                alt = image.get("alt", "")
                if not alt or alt == image.get("uri") or alt.endswith((".png", ".svg", ".jpg")):
                    image["alt"] = text


def setup(app: Sphinx) -> dict:
    app.add_transform(FigureAlt)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
