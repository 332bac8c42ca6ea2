"""Estimates with standard errors.

Every simulated number in the book is an :class:`Estimate`. Standard errors
come from independent replicas (:func:`from_replicas`): the simulation splits
its coordinates into groups that share no randomness, so the group results
are independent draws and their spread is an honest error bar, whatever the
autocorrelation in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps


@dataclass(frozen=True)
class Estimate:
    """A simulated value with its standard error.

    ``value`` and ``stderr`` are floats or arrays of one shape. ``dof`` is the
    number of degrees of freedom of the stderr (groups - 1); the 95% interval
    uses Student's t with that many, or the normal quantile when ``dof`` is None.
    Formatted (``f"{est:.4f}"``) it prints ``value ± half-width of the 95%
    interval``: the book's one meaning of "±" (``book/notation.md``).
    """

    value: np.ndarray | float
    stderr: np.ndarray | float
    dof: int | None = None

    @property
    def quantile95(self) -> float:
        """The two-sided 95% multiplier of the standard error."""
        if self.dof is None:
            return float(_sps.norm.ppf(0.975))
        return float(_sps.t.ppf(0.975, self.dof))

    @property
    def halfwidth95(self):
        return self.quantile95 * np.asarray(self.stderr)

    @property
    def ci95(self) -> tuple:
        """(low, high) of the 95% confidence interval."""
        h = self.halfwidth95
        return (np.asarray(self.value) - h, np.asarray(self.value) + h)

    @property
    def relative_halfwidth95(self):
        """Half-width of the 95% interval divided by |value|."""
        return self.halfwidth95 / np.abs(np.asarray(self.value))

    def contains(self, x) -> np.ndarray:
        """Whether x lies inside the 95% interval (elementwise)."""
        lo, hi = self.ci95
        return (lo <= x) & (x <= hi)

    def scaled(self, factor) -> "Estimate":
        """The estimate times a known (exact) factor, elementwise."""
        factor = np.asarray(factor, dtype=float)
        return Estimate(np.asarray(self.value) * factor, np.asarray(self.stderr) * np.abs(factor), self.dof)

    def __getitem__(self, index) -> "Estimate":
        return Estimate(np.asarray(self.value)[index], np.asarray(self.stderr)[index], self.dof)

    def __format__(self, spec: str) -> str:
        spec = spec or ".4g"
        v, s = np.asarray(self.value), np.asarray(self.stderr)
        if v.ndim:
            return "[" + ", ".join(format(self[i], spec) for i in range(v.shape[0])) + "]"
        return f"{format(float(v), spec)} ± {format(float(self.halfwidth95), spec)}"

    def __str__(self) -> str:
        return format(self)


def from_replicas(samples, axis: int = -1) -> Estimate:
    """Mean of independent replicas along ``axis`` with its standard error."""
    x = np.asarray(samples, dtype=float)
    n = x.shape[axis]
    if n < 2:
        raise ValueError(f"samples must hold at least 2 replicas along axis {axis}, got {n}")
    mean = x.mean(axis=axis)
    stderr = x.std(axis=axis, ddof=1) / np.sqrt(n)
    return Estimate(mean, stderr, dof=n - 1)


def transform(est: Estimate, func, derivative) -> Estimate:
    """func(estimate) with the delta-method standard error |func'(value)| stderr.

    Valid while func is close to linear over a few standard errors, which the
    book's estimates (relative errors ~1e-3) satisfy for smooth functions.
    """
    value = np.asarray(est.value)
    return Estimate(func(value), np.abs(derivative(value)) * np.asarray(est.stderr), est.dof)


def sqrt(est: Estimate) -> Estimate:
    """sqrt of an estimate of a positive mean, by the delta method."""
    return transform(est, np.sqrt, lambda x: 0.5 / np.sqrt(x))


def square(est: Estimate) -> Estimate:
    """The square of an estimate, by the delta method (stderr * 2 |value|)."""
    return transform(est, np.square, lambda x: 2.0 * x)


def z_scores(est: Estimate, exact, *, rtol: float = 1e-12) -> np.ndarray:
    """(value - exact) / stderr, elementwise.

    A simulation whose output is deterministic (a sign update once the noise
    can no longer flip any sign) has a zero standard error; there the estimate
    must equal ``exact`` to ``rtol`` (rounding), giving z = 0, and anything
    else gives z = inf, so no check passes by dividing by zero.
    """
    diff = np.asarray(est.value, dtype=float) - np.asarray(exact, dtype=float)
    se = np.broadcast_to(np.asarray(est.stderr, dtype=float), diff.shape)
    matches = np.abs(diff) <= rtol * np.abs(np.asarray(exact, dtype=float))
    safe = np.where(se > 0, se, 1.0)
    return np.where(se > 0, diff / safe, np.where(matches, 0.0, np.inf))
