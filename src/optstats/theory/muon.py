"""Muon's update RMS and the factor that matches it to Adam's.

Chapter "Muon, Lion and SGDM at equilibrium" (issue 17). Muon's update is
msign(M) of its momentum M (an n x m matrix), whose singular values are all
one at full rank, so its RMS is fixed by the shape; practice rescales it to
Adam's update RMS ("match Adam's update RMS", post 10739; Moonlight), to
reuse AdamW's learning rate and weight decay.
"""

from __future__ import annotations

import numpy as np

from .. import _validate
from .update_rms import adam_update_rms

MATCHING_METHODS = ("exact", "mean-field")


def _shape(shape):
    if isinstance(shape, (str, bytes)) or np.ndim(shape) != 1 or len(shape) != 2:
        raise ValueError(f"shape must be two positive integers (n, m), got {shape!r}")
    n, m = shape
    for value in (n, m):
        if isinstance(value, bool) or not float(value).is_integer() or value < 1:
            raise ValueError(f"shape must be two positive integers (n, m), got {shape!r}")
    return int(n), int(m)


def muon_update_rms(shape):
    """RMS of msign(M) for a full-rank n x m matrix: sqrt(min(n, m) / (n m)) = 1/sqrt(max(n, m))."""
    n, m = _shape(shape)
    return 1.0 / np.sqrt(max(n, m))


def adam_matching_scale(beta1, beta2, shape, *, method="exact"):
    """The factor that gives Muon's update (msign, no scale) the update RMS of Adam.

    ``"exact"``: Adam's stationary update RMS for pure Gaussian noise
    (``adam_update_rms(method="exact")``, chapter "Adam's update RMS") over
    :func:`muon_update_rms`; ``"mean-field"``: sqrt((1-beta1)/(1+beta1)) sqrt(max(n, m)).
    Moonlight's rule 0.2 sqrt(max(n, m)) is the mean field with 0.2 in place
    of Adam's RMS.
    """
    if method not in MATCHING_METHODS:
        raise ValueError(f"method must be one of {MATCHING_METHODS}, got {method!r}")
    n, m = _shape(shape)
    beta1 = _validate.beta("beta1", beta1)
    beta2 = _validate.beta("beta2", beta2)
    if method == "mean-field":
        return np.sqrt((1.0 - beta1) / (1.0 + beta1)) * np.sqrt(max(n, m))
    return adam_update_rms(beta1, beta2, method="exact") / muon_update_rms((n, m))
