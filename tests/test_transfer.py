"""optstats.transfer: each model carries over what it says it carries.

Synthetic calibration statistics (no training): a run predicted from itself
returns what each model keeps from it, a gain that is known in advance is
moved by the learning rate and the batch size as documented, and a target
with another lr * wd is refused.
"""

import dataclasses

import numpy as np
import pytest

from optstats import runs, theory, transfer

CAL = runs.Config(steps=1600, warmup=100, decay_start=1300, lr=3e-3, wd=1.5, window=(900, 1300))
BETA3 = 1 - CAL.lr * CAL.wd


def equilibrium(a):
    """Statistics of tensors whose update RMS is the restoring model's at feedback a."""
    a = np.asarray(a, dtype=float)
    rho = theory.restoring_lag_correlation(a, 0.9, BETA3, np.arange(1, CAL.lags + 1))
    return {
        "update_rms": theory.restoring_update_rms(a, 0.9, BETA3),
        "weight_rms": np.full(a.shape, 0.007),
        "power": np.ones(a.shape),
        "lag_correlation": rho,
        "lag_sum_beta1": rho @ 0.9 ** np.arange(1, CAL.lags + 1),
        "lag_sum_beta3": np.full(a.shape, 0.3),
    }


def test_a_run_predicted_from_itself():
    eq = equilibrium([0.0, 0.2, 1.0])
    out = transfer.predict(eq, CAL, CAL)
    for key in ("update_rms", "weight_rms"):
        np.testing.assert_allclose(out["ratio"][key], eq[key], rtol=1e-12)
        np.testing.assert_allclose(out["feedback"][key], eq[key], rtol=1e-9)
    U_posts = theory.adam_update_rms(0.9, 0.95, method="exact")
    np.testing.assert_allclose(out["posts"]["update_rms"], U_posts)
    want = theory.adam_update_rms_correlated(0.9, eq["power"], eq["lag_sum_beta1"])
    np.testing.assert_allclose(out["correlation"]["update_rms"], want, rtol=1e-12)


@pytest.mark.parametrize("change, factor", [
    ({"batch_size": 128}, 2.0),          # k sqrt(B'/B)
    ({"lr": 1.5e-3, "wd": 3.0}, 0.5),    # k lr'/lr
    ({"betas": (0.6, 0.95)}, 1.0),       # k unchanged
])
def test_the_feedback_gain_moves_as_documented(change, factor):
    a = np.array([0.05, 0.5, 2.0])
    target = dataclasses.replace(CAL, **change)
    out = transfer.predict(equilibrium(a), CAL, target)
    beta1 = target.betas[0]
    gain = theory.restoring_gain(a, 0.9, BETA3) * factor
    want = theory.restoring_update_rms(theory.restoring_feedback(gain, beta1, BETA3), beta1, BETA3)
    np.testing.assert_allclose(out["feedback"]["update_rms"], want, rtol=1e-7)
    a_t = theory.restoring_feedback(gain, beta1, BETA3)
    ratio = (theory.restoring_weight_rms(target.lr, target.wd, a_t, beta1)
             / theory.restoring_weight_rms(CAL.lr, CAL.wd, a, 0.9))
    np.testing.assert_allclose(out["feedback"]["weight_rms"], 0.007 * ratio, rtol=1e-7)


def test_lag_sum_at_another_beta1_is_the_truncated_sum():
    eq = equilibrium([0.3])
    k = np.arange(1, CAL.lags + 1)
    assert transfer.lag_sum(eq, CAL, 0.6) == pytest.approx(eq["lag_correlation"] @ 0.6**k)
    with pytest.raises(ValueError, match="beta1 must be"):
        transfer.lag_sum(eq, CAL, 0.95)


def test_another_decay_per_step_is_refused():
    with pytest.raises(ValueError, match="lr \\* wd must equal"):
        transfer.predict(equilibrium([0.1]), CAL, dataclasses.replace(CAL, wd=2.0))
