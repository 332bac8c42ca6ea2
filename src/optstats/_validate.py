"""Checks of user input at the package boundary.

Every public function validates its hyperparameters here so that bad input
fails with one kind of message: the parameter, its value, the allowed range.
"""

from __future__ import annotations

import numpy as np


def _as_array(name: str, value) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number or array of real numbers, got {value!r}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def finite(name: str, value) -> np.ndarray:
    """Any finite real number(s)."""
    return _as_array(name, value)


def _in_range(name: str, value, outside, allowed: str) -> np.ndarray:
    arr = _as_array(name, value)
    if np.any(outside(arr)):
        raise ValueError(f"{name} must {allowed}, got {value!r}")
    return arr


def beta(name: str, value) -> np.ndarray:
    """An EMA coefficient in [0, 1)."""
    return _in_range(name, value, lambda a: (a < 0) | (a >= 1), "lie in [0, 1)")


def open_unit(name: str, value) -> np.ndarray:
    """A number in (0, 1): an EMA coefficient that must not be zero."""
    return _in_range(name, value, lambda a: (a <= 0) | (a >= 1), "lie in (0, 1)")


def unit_fraction(name: str, value) -> np.ndarray:
    """A ratio in [0, 1), such as an RMS or a norm ratio below one."""
    return _in_range(name, value, lambda a: (a < 0) | (a >= 1), "lie in [0, 1)")


def nonnegative(name: str, value) -> np.ndarray:
    """A real number >= 0 (learning rate, weight decay, epsilon, RMS)."""
    return _in_range(name, value, lambda a: a < 0, "be >= 0")


def positive(name: str, value) -> np.ndarray:
    """A real number > 0 (a standard deviation)."""
    return _in_range(name, value, lambda a: a <= 0, "be > 0")


def at_least_one(name: str, value) -> np.ndarray:
    """A batch size: a real number >= 1."""
    return _in_range(name, value, lambda a: a < 1, "be >= 1")


def scalar(check, name: str, value) -> float:
    """One number passing ``check`` (one of the checks above), as a float; arrays are refused."""
    arr = check(name, value)
    if arr.ndim:
        raise ValueError(f"{name} must be a scalar, got an array of shape {arr.shape}")
    return float(arr)


def count(name: str, value, minimum: int = 1) -> int:
    """A whole number >= minimum (steps, coordinates, groups)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def generator(name: str, value) -> np.random.Generator:
    """Randomness always comes from an explicit numpy Generator."""
    if not isinstance(value, np.random.Generator):
        raise ValueError(
            f"{name} must be a numpy.random.Generator (e.g. np.random.default_rng(0)), got {type(value).__name__}"
        )
    return value


def step_numbers(name: str, value) -> np.ndarray:
    """An increasing, non-empty 1-d sequence of step numbers >= 1, as an int array."""
    steps = np.asarray(value)
    if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-d sequence of whole numbers, got {value!r}")
    if steps[0] < 1 or np.any(np.diff(steps) <= 0):
        raise ValueError(f"{name} must be increasing whole numbers >= 1, got {value!r}")
    return steps
