"""Learning-rate (and weight-decay) schedules as per-step arrays.

Chapter "Weight RMS under schedules" (``book/schedules.ipynb``, post 11404).
Every function returns a float array of length ``steps`` whose entry 0 is the
value used at step 1 and whose last entry is the value used at the last step,
ready for ``optstats.simulate.weight_rms_trajectory`` and
``optstats.theory.weight_rms_schedule``.

``linear`` and ``cosine`` include both ends (step 1 takes ``start`` / ``peak``,
the last step ``end`` / ``floor``). ``wsd`` samples the post's continuous
warmup-stable-decay curve at s = 1, ..., steps: its warmup rises from 0 at step
0, so step ``warmup`` is the first at ``peak``, and the decay reaches ``floor``
at the last step.
"""

from __future__ import annotations

import numpy as np

from . import _validate


def _floor_below_peak(peak, floor):
    peak = _validate.scalar(_validate.nonnegative, "peak", peak)
    floor = _validate.scalar(_validate.nonnegative, "floor", floor)
    if floor > peak:
        raise ValueError(f"floor must lie in [0, peak={peak!r}], got {floor!r}")
    return peak, floor


def constant(steps, value):
    """``value`` at every one of ``steps`` steps."""
    steps = _validate.count("steps", steps)
    return np.full(steps, _validate.scalar(_validate.nonnegative, "value", value))


def linear(steps, start, end):
    """From ``start`` at step 1 to ``end`` at the last step, linearly (either direction)."""
    steps = _validate.count("steps", steps)
    start = _validate.scalar(_validate.nonnegative, "start", start)
    end = _validate.scalar(_validate.nonnegative, "end", end)
    return np.linspace(start, end, steps)


def cosine(steps, peak, floor=0.0):
    """Half a cosine from ``peak`` at step 1 down to ``floor`` at the last step."""
    steps = _validate.count("steps", steps)
    peak, floor = _floor_below_peak(peak, floor)
    phase = np.linspace(0.0, np.pi, steps)
    return floor + (peak - floor) * 0.5 * (1.0 + np.cos(phase))


def wsd(steps, peak, warmup, decay_start, floor=0.0):
    """Warmup-stable-decay: peak * s / warmup for s <= warmup, peak up to step
    ``decay_start``, then linear to ``floor`` at the last step.

    ``warmup`` may be 0 (no warmup); 0 <= warmup <= decay_start < steps.
    """
    steps = _validate.count("steps", steps)
    peak, floor = _floor_below_peak(peak, floor)
    warmup = _validate.count("warmup", warmup, minimum=0)
    decay_start = _validate.count("decay_start", decay_start, minimum=0)
    if warmup > decay_start:
        raise ValueError(f"warmup must be <= decay_start={decay_start}, got {warmup}")
    if decay_start >= steps:
        raise ValueError(f"decay_start must be < steps={steps} (the decay needs at least one step), got {decay_start}")
    s = np.arange(1, steps + 1, dtype=float)
    out = np.full(steps, peak)
    if warmup:
        rising = s < warmup
        out[rising] = peak * s[rising] / warmup
    decaying = s > decay_start
    out[decaying] = peak + (floor - peak) * (s[decaying] - decay_start) / (steps - decay_start)
    return out
