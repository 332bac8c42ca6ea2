"""PyTorch's optimizers during real training, against the theory.

The one package of ``optstats`` that imports torch (with ``optstats.network``);
nothing else imports it, so the rest works without torch installed.

- :class:`Watch` (``watch.py``): the instrument, attached to an Adam/AdamW or
  Muon optimizer's step hooks; its ``summary()`` is :mod:`optstats.report`.
- :class:`AdamWatch` (``legacy.py``): the first probe, called by hand after
  each step; kept unchanged for ``optstats.network`` (the real-network
  chapter's lag correlations use its float64 buffers). New code uses Watch.
"""

from ..report import FIELDS as WATCH_FIELDS
from .legacy import FIELDS, AdamWatch, Flat
from .watch import Watch

__all__ = ["FIELDS", "WATCH_FIELDS", "AdamWatch", "Flat", "Watch"]
