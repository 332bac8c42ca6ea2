"""Gradient streams.

The noise model of all four posts: per-coordinate gradients drawn iid in time
from N(mean, std^2 / batch_size). ``mean`` and ``std`` broadcast against the
coordinates, so a stream can give every coordinate its own signal-to-noise
ratio. Random numbers come in blocks from an explicit ``np.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from . import _validate


class Gaussian:
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
        rng.standard_normal(out=out)
        out *= self.noise_std
        if not self.is_centred:
            out += self.mean
        return out

    def __repr__(self) -> str:
        return f"Gaussian(mean={self.mean!r}, std={self.std!r}, batch_size={self.batch_size!r})"
