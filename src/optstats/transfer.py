"""Predicting one training run's equilibrium from another's, tensor by tensor.

Chapter "The theory in real networks". A run with one hyperparameter changed
(beta1, the learning rate with the weight decay, the batch size) is
predicted from a calibration run of the same network, per tensor, by four
models that differ in what they carry over:

``posts``        nothing: the posts' pure-noise values for the target's
                 hyperparameters (update RMS exact for its betas, weight RMS
                 from the exact sums)
``ratio``        each tensor's measured/posts ratio in the calibration run,
                 applied to the posts' value for the target
``correlation``  the calibration run's lag correlation of the normalised
                 gradient, C(0) and rho(k), in the chapter's decomposition
                 (``theory.adam_update_rms_correlated``,
                 ``theory.adamw_weight_rms_correlated``)
``feedback``     the restoring-force gain k of ``theory.feedback``, fitted per
                 tensor to the calibration run's update RMS and moved to the
                 target as k lr'/lr sqrt(B'/B); the weight RMS is the
                 calibration's times the model's ratio of the two runs'
                 weight RMS (the model's own level is a fluctuation about an
                 optimum, far below the measured one)

Only what a changed hyperparameter moves is predicted; beta3 = 1 - lr wd
must be the same in both runs (the lag sum at beta3 is stored for the
calibration's beta3 only). numpy only: it reads stored runs.
"""

from __future__ import annotations

import numpy as np

from . import theory

MODELS = ("posts", "ratio", "correlation", "feedback")


def _posts(config):
    beta1, beta2 = config.betas
    U = theory.adam_update_rms(beta1, beta2, method="exact")
    W = theory.adamw_weight_rms(config.lr, config.wd, beta1=beta1, method="exact-sums")
    return float(U), float(W)


def lag_sum(equilibrium: dict, config, beta1: float) -> np.ndarray:
    """A(beta1) of the calibration run: its stored full sum at its own beta1,
    else sum_{k<=lags} beta1^k rho(k) (beta1^(lags+1) is below 1e-7 for
    beta1 <= 0.6 at 32 lags; a larger beta1 than the stored one is refused)."""
    if beta1 == config.betas[0]:
        return equilibrium["lag_sum_beta1"]
    rho = equilibrium["lag_correlation"]
    if beta1 ** (rho.shape[1] + 1) > 1e-7:
        raise ValueError(f"beta1 must be the calibration's {config.betas[0]} or small enough that "
                         f"beta1^{rho.shape[1] + 1} < 1e-7 (the stored lags), got {beta1}")
    k = np.arange(1, rho.shape[1] + 1)
    return rho @ beta1 ** k


def predict(equilibrium: dict, calibration, target) -> dict:
    """{model: {"update_rms": array, "weight_rms": array}} per tensor for the
    run ``target`` (a Config) from the calibration run's ``equilibrium``
    (the mean over its seeds of ``Run.equilibrium()``) and its Config. The
    weight RMS is predicted for every tensor; it means something only for
    the decayed ones."""
    beta3 = 1.0 - calibration.lr * calibration.wd
    if not np.isclose(1.0 - target.lr * target.wd, beta3, rtol=0, atol=1e-12):
        raise ValueError(f"target lr * wd must equal the calibration's {calibration.lr * calibration.wd}, "
                         f"got {target.lr * target.wd}")
    U_cal, W_cal = equilibrium["update_rms"], equilibrium["weight_rms"]
    U_p0, W_p0 = _posts(calibration)
    U_p1, W_p1 = _posts(target)
    ones = np.ones_like(U_cal)
    beta1, beta1_t = calibration.betas[0], target.betas[0]
    out = {"posts": {"update_rms": U_p1 * ones, "weight_rms": W_p1 * ones},
           "ratio": {"update_rms": U_cal * U_p1 / U_p0, "weight_rms": W_cal * W_p1 / W_p0}}
    power = equilibrium["power"]
    A1 = lag_sum(equilibrium, calibration, beta1_t)
    A3 = equilibrium["lag_sum_beta3"]
    out["correlation"] = {
        "update_rms": theory.adam_update_rms_correlated(beta1_t, power, A1),
        "weight_rms": theory.adamw_weight_rms_correlated(target.lr, target.wd, beta1_t, power, A1, A3),
    }
    a = theory.restoring_fit(U_cal, beta1, beta3)
    gain_t = theory.restoring_gain(a, beta1, beta3) * target.lr / calibration.lr * np.sqrt(
        target.batch_size / calibration.batch_size)
    a_t = theory.restoring_feedback(gain_t, beta1_t, beta3)
    # the model's own weight RMS is a fluctuation about an optimum, far below
    # the measured one (the chapter shows it): only its change is carried
    change = (theory.restoring_weight_rms(target.lr, target.wd, a_t, beta1_t)
              / theory.restoring_weight_rms(calibration.lr, calibration.wd, a, beta1))
    out["feedback"] = {"update_rms": theory.restoring_update_rms(a_t, beta1_t, beta3), "weight_rms": W_cal * change}
    return out
