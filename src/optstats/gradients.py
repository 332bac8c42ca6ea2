"""Gradient streams.

The noise model of all four posts: per-coordinate gradients drawn iid in time
from N(mean, std^2 / batch_size) (``Gaussian``). ``mean`` and ``std`` broadcast
against the coordinates, so a stream can give every coordinate its own
signal-to-noise ratio. Random numbers come in blocks from an explicit
``np.random.Generator``.

Three streams leave the model, to measure how far the book's numbers move
when it fails (update-rms chapter, "Outside the model"): heavy tails
(``StudentT``), noise correlated in time (``AR1``) and a mean that drifts
(``DriftingMean``). The simulators read a stream through ``sampler``, which
carries the state of a correlated stream from one block to the next.
"""

from __future__ import annotations

import numpy as np

from . import _validate


class _Stream:
    """What the simulators need of a gradient stream: ``mean`` and ``noise_std``
    (the stationary mean and standard deviation, broadcastable), ``param_shape``,
    ``is_centred``, ``iid`` (independent in time with exactly these moments,
    which the momentum control variate needs) and ``sampler``."""

    iid = True

    def sampler(self, rng: np.random.Generator, shape):
        """A function ``draw(steps, out)`` giving consecutive blocks of one run."""
        return lambda steps, out: self.draw(rng, steps, shape, out=out)

    def _block(self, rng, steps, shape, out):
        _validate.generator("rng", rng)
        steps = _validate.count("steps", steps)
        shape = tuple(shape)
        if np.broadcast_shapes(shape, self.param_shape) != shape:
            raise ValueError(
                f"shape must contain the gradient parameters' shape {self.param_shape}, got {shape}"
            )
        full = (steps, *shape)
        if out is None:
            out = np.empty(full)
        elif out.shape != full:
            raise ValueError(f"out must have shape {full}, got {out.shape}")
        return out


class Gaussian(_Stream):
    """iid Gaussian gradients: g_t ~ N(mean, std^2 / batch_size), coordinatewise.

    Parameters
    ----------
    mean : float or array
        The expected gradient mu (broadcasts against the coordinates).
    std : float or array
        The per-sample standard deviation sigma (> 0).
    batch_size : float or array
        B >= 1; the gradient's standard deviation is std / sqrt(B).
    """

    def __init__(self, mean=0.0, std=1.0, batch_size=1):
        self.mean = _validate.finite("mean", mean)
        self.std = _validate.positive("std", std)
        self.batch_size = _validate.at_least_one("batch_size", batch_size)
        self.noise_std = self.std / np.sqrt(self.batch_size)
        self.param_shape = np.broadcast_shapes(self.mean.shape, self.noise_std.shape)
        self.is_centred = not np.any(self.mean)

    @property
    def snr(self) -> np.ndarray:
        """Per-coordinate signal-to-noise ratio mu^2 / (sigma^2 / B)."""
        return self.mean**2 / self.noise_std**2

    def draw(self, rng: np.random.Generator, steps: int, shape, out: np.ndarray | None = None) -> np.ndarray:
        """A block of ``steps`` consecutive gradients, shape ``(steps, *shape)``.

        ``shape`` must broadcast with the stream's parameters. Pass ``out`` (an
        array of that shape) to reuse memory across blocks.
        """
        out = self._block(rng, steps, shape, out)
        rng.standard_normal(out=out)
        out *= self.noise_std
        if not self.is_centred:
            out += self.mean
        return out

    def __repr__(self) -> str:
        return f"Gaussian(mean={self.mean!r}, std={self.std!r}, batch_size={self.batch_size!r})"


class StudentT(_Stream):
    """iid heavy-tailed gradients: mean + std * t_df * sqrt((df - 2) / df).

    The Student-t noise is scaled to variance std^2 (so df > 2), so that only
    the shape of the distribution differs from ``Gaussian(mean, std)``.
    """

    def __init__(self, df, mean=0.0, std=1.0):
        self.df = _validate.scalar(lambda n, v: _validate._in_range(n, v, lambda a: a <= 2, "be > 2"), "df", df)
        self.mean = _validate.finite("mean", mean)
        self.std = _validate.positive("std", std)
        self.noise_std = self.std
        self.param_shape = np.broadcast_shapes(self.mean.shape, self.std.shape)
        self.is_centred = not np.any(self.mean)

    def draw(self, rng, steps, shape, out=None):
        out = self._block(rng, steps, shape, out)
        out[...] = rng.standard_t(self.df, size=out.shape)
        out *= self.std * np.sqrt((self.df - 2.0) / self.df)
        if not self.is_centred:
            out += self.mean
        return out

    def __repr__(self) -> str:
        return f"StudentT(df={self.df!r}, mean={self.mean!r}, std={self.std!r})"


def _ar1_blocks(rng, rho, std, shape):
    """Consecutive blocks of a stationary AR(1) process x_t = rho x_{t-1} + sqrt(1 - rho^2) std z_t,
    started in its stationary law N(0, std^2); ``rho`` and ``std`` broadcast against ``shape``."""
    state = {"x": rng.standard_normal(shape) * std}
    gain = np.sqrt(1.0 - rho**2) * std

    def draw(steps, out):
        rng.standard_normal(out=out)
        out *= gain
        x = state["x"]
        for k in range(steps):  # a recursion in time, vectorised over coordinates
            x = rho * x + out[k]
            out[k] = x
        state["x"] = x.copy()
        return out

    return draw


class _CorrelatedStream(_Stream):
    """A stream correlated in time: its state lives in the sampler of one run."""

    iid = False

    def draw(self, rng, steps, shape, out=None):
        """One run of ``steps`` gradients from the stationary law (a fresh start)."""
        out = self._block(rng, steps, shape, out)
        return self.sampler(rng, shape)(steps, out)


class AR1(_CorrelatedStream):
    """Gradients correlated in time: mean + an AR(1) noise with lag-one correlation ``rho``.

    The noise is stationary from the first step, with variance std^2 and
    correlation rho^|d| at lag d; ``rho`` in (-1, 1) broadcasts against the
    coordinates, so one run can sweep it. Not iid: the momentum control
    variate does not apply.
    """

    def __init__(self, rho, mean=0.0, std=1.0):
        self.rho = _validate._in_range("rho", rho, lambda a: np.abs(a) >= 1, "lie in (-1, 1)")
        self.mean = _validate.finite("mean", mean)
        self.std = _validate.positive("std", std)
        self.noise_std = self.std
        self.param_shape = np.broadcast_shapes(self.rho.shape, self.mean.shape, self.std.shape)
        self.is_centred = not np.any(self.mean)

    def sampler(self, rng, shape):
        self._block(rng, 1, shape, None)  # checks rng and shape
        noise = _ar1_blocks(rng, self.rho, self.std, tuple(shape))

        def draw(steps, out):
            noise(steps, out)
            if not self.is_centred:
                out += self.mean
            return out

        return draw

    def __repr__(self) -> str:
        return f"AR1(rho={self.rho!r}, mean={self.mean!r}, std={self.std!r})"


class DriftingMean(_CorrelatedStream):
    """iid Gaussian noise around a mean that drifts: g_t = mu_t + std z_t.

    mu_t is a stationary AR(1) process with standard deviation ``drift_std``
    and correlation time ``memory`` steps (lag-one correlation 1 - 1/memory):
    a signal that points the same way for about ``memory`` steps, then
    wanders off. Its long-run mean is zero. Not iid in time.
    """

    def __init__(self, drift_std, memory, std=1.0):
        self.drift_std = _validate.positive("drift_std", drift_std)
        self.memory = _validate.scalar(_validate.at_least_one, "memory", memory)
        self.std = _validate.positive("std", std)
        self.mean = np.zeros(())
        self.noise_std = self.std
        self.param_shape = np.broadcast_shapes(self.drift_std.shape, self.std.shape)
        self.is_centred = True

    def sampler(self, rng, shape):
        self._block(rng, 1, shape, None)
        drift = _ar1_blocks(rng, 1.0 - 1.0 / self.memory, self.drift_std, tuple(shape))

        def draw(steps, out):
            drift(steps, out)
            out += self.std * rng.standard_normal(out.shape)
            return out

        return draw

    def __repr__(self) -> str:
        return f"DriftingMean(drift_std={self.drift_std!r}, memory={self.memory!r}, std={self.std!r})"
