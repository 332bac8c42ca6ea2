"""PyTorch's optimizers during real training, against the theory.

The one package of ``optstats`` that imports torch (with ``optstats.network``);
nothing else imports it, so the rest works without torch installed.

- :class:`Watch` (``watch.py``): the instrument, attached to an Adam/AdamW or
  Muon optimizer's step hooks; its ``summary()`` is :mod:`optstats.report`.
"""

from ..report import FIELDS as WATCH_FIELDS
from .watch import Watch

__all__ = ["WATCH_FIELDS", "Watch"]
