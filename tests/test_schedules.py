"""Schedules: shapes, endpoints, the post's continuous WSD curve, bad input."""

import numpy as np
import pytest

from optstats import schedules


def test_constant():
    out = schedules.constant(5, 0.3)
    assert out.shape == (5,) and np.all(out == 0.3)


@pytest.mark.parametrize("start, end", [(1e-3, 0.0), (0.0, 2e-3), (0.5, 0.5)])
def test_linear_ends_and_steps(start, end):
    out = schedules.linear(11, start, end)
    assert out.shape == (11,)
    assert out[0] == start and out[-1] == pytest.approx(end, abs=1e-18)
    # equal increments (end - start) / (steps - 1)
    np.testing.assert_allclose(np.diff(out), (end - start) / 10, atol=1e-15)


def test_cosine_ends_midpoint_and_monotone():
    out = schedules.cosine(101, 1e-3, floor=1e-4)
    assert out.shape == (101,)
    assert out[0] == pytest.approx(1e-3, rel=1e-15) and out[-1] == pytest.approx(1e-4, rel=1e-12)
    assert out[50] == pytest.approx(5.5e-4, rel=1e-12)  # half-way: the mean of peak and floor
    assert np.all(np.diff(out) < 0)


def test_cosine_default_floor_is_zero():
    assert schedules.cosine(7, 2.0)[-1] == pytest.approx(0.0, abs=1e-15)


def test_wsd_samples_the_posts_curve():
    steps, peak, t1, t2 = 100, 2e-3, 10, 70
    s = np.arange(1, steps + 1)
    # post 11404: s/t1 peak on [0, t1], peak on [t1, t2], (t - s)/(t - t2) peak on [t2, t]
    expected = np.where(s <= t1, s / t1 * peak, np.where(s <= t2, peak, (steps - s) / (steps - t2) * peak))
    np.testing.assert_allclose(schedules.wsd(steps, peak, t1, t2), expected, rtol=1e-15, atol=1e-18)


def test_wsd_floor_warmup_zero_and_ends():
    out = schedules.wsd(50, 1.0, 0, 40, floor=0.1)
    assert out[0] == 1.0 and out[39] == 1.0 and out[-1] == pytest.approx(0.1, rel=1e-14)
    assert np.all(np.diff(out[39:]) < 0)
    warm = schedules.wsd(50, 1.0, 5, 40)
    np.testing.assert_allclose(warm[:5], [0.2, 0.4, 0.6, 0.8, 1.0], rtol=1e-15)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: schedules.constant(0, 1.0), "steps"),
        (lambda: schedules.constant(2.5, 1.0), "steps"),
        (lambda: schedules.constant(3, -1.0), "value"),
        (lambda: schedules.constant(3, np.nan), "value"),
        (lambda: schedules.linear(3, -1e-3, 0.0), "start"),
        (lambda: schedules.linear(3, 1e-3, [0.0, 1.0]), "end"),
        (lambda: schedules.cosine(3, 1e-3, floor=2e-3), "floor"),
        (lambda: schedules.cosine(3, -1.0), "peak"),
        (lambda: schedules.wsd(10, 1.0, 6, 5), "warmup"),
        (lambda: schedules.wsd(10, 1.0, 2, 10), "decay_start"),
        (lambda: schedules.wsd(10, 1.0, -1, 5), "warmup"),
        (lambda: schedules.wsd(10, 1.0, 2, 5, floor=-0.1), "floor"),
    ],
)
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
