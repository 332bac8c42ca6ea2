"""Closed forms and exact references as vectorised numpy functions.

Every function broadcasts its array arguments and validates them (a ``ValueError``
names the parameter, its value and the allowed range). Each docstring names
the chapter and equation it implements; the chapters derive these formulas with
sympy and assert that the numpy versions agree.

One module per idea, all re-exported here:

- ``ema``: EMA and double-EMA sums (chapter "The EMA toolkit");
- ``update_rms``: Adam's stationary update statistics and the SNR estimators
  (chapter "Adam's update RMS");
- ``weight_rms``: the weight RMS under decoupled weight decay (chapter "The
  weight RMS of AdamW");
- ``batch_size``: the optimal learning rate against the batch size (chapter
  "Momentum and the learning-rate / batch-size law");
- ``softsign``: SoftSign moments and Adam's epsilon in that law (chapter
  "Adam's epsilon and the scaling law");
- ``schedules``: the weight RMS under learning-rate and weight-decay schedules
  (chapter "Weight RMS under schedules");
- ``correlated``: AdamW at equilibrium when the gradient is correlated in time
  (chapter "The theory in real networks");
- ``feedback``: a restoring force as the source of that correlation, one gain
  per tensor that carries over to other runs (same chapter);
- ``lion``, ``muon``: Lion's weight RMS; Muon's update RMS, the factor that
  matches it to Adam's, the lag correlation of msign(M) and Muon's weight
  RMS (chapter "Muon, Lion and SGDM at equilibrium");
- ``scale_invariant``: SGDM's equilibrium on a scale-invariant layer (same
  chapter).
"""

from .batch_size import (
    adam_surge_threshold,
    optimal_lr_adam,
    optimal_lr_sgdm,
    optimal_lr_signsgdm,
)
from .feedback import (
    restoring_covariance,
    restoring_feedback,
    restoring_fit,
    restoring_gain,
    restoring_lag_correlation,
    restoring_noise_share,
    restoring_update_lag_sum,
    restoring_update_rms,
    restoring_weight_rms,
    stability_limits,
)
from .correlated import (
    adam_update_rms_correlated,
    adamw_cos_theta_u_mean_field,
    adamw_weight_rms_correlated,
    angular_update,
    cos_theta_u,
)
from .ema import (
    double_ema_kernel,
    double_ema_mean,
    double_ema_variance,
    double_ema_variance_post,
    ema_mean,
    ema_variance,
)
from .lion import lion_presign_correlation, lion_weight_rms
from .muon import (
    CONV_HANDLING,
    MUON_SCALE_CONVENTIONS,
    adam_matching_scale,
    conv_matrix,
    momentum_lag_correlation,
    msign_correlation,
    muon_angular_update,
    muon_scale_conventions,
    muon_update_correlation_sum,
    muon_update_rms,
    muon_weight_rms,
    nesterov_lag_factor,
    torch_muon_lr,
    torch_muon_weight_rms,
)
from .scale_invariant import (
    kosson_sgdm_angle,
    sgdm_scale_invariant_angle,
    sgdm_scale_invariant_mean_square,
    sgdm_scale_invariant_weight_rms,
)
from .schedules import weight_rms_schedule
from .softsign import optimal_lr_softsign, softsign, softsign_moments
from .update_rms import (
    adam_update_mean,
    adam_update_rms,
    noise_std_from_exp_avg_sq,
    snr_from_momentum_ratio,
    snr_from_update_rms,
)
from .weight_rms import (
    adamw_weight_rms,
    relaxation_time,
    signsgdmw_weight_rms,
    weight_rms_quick_estimate,
)

__all__ = [
    "CONV_HANDLING",
    "MUON_SCALE_CONVENTIONS",
    "adam_matching_scale",
    "adam_surge_threshold",
    "adam_update_mean",
    "adam_update_rms",
    "adam_update_rms_correlated",
    "adamw_cos_theta_u_mean_field",
    "adamw_weight_rms",
    "adamw_weight_rms_correlated",
    "conv_matrix",
    "angular_update",
    "cos_theta_u",
    "double_ema_kernel",
    "double_ema_mean",
    "double_ema_variance",
    "double_ema_variance_post",
    "ema_mean",
    "ema_variance",
    "kosson_sgdm_angle",
    "lion_presign_correlation",
    "lion_weight_rms",
    "momentum_lag_correlation",
    "msign_correlation",
    "muon_angular_update",
    "muon_scale_conventions",
    "muon_update_correlation_sum",
    "muon_update_rms",
    "muon_weight_rms",
    "nesterov_lag_factor",
    "noise_std_from_exp_avg_sq",
    "torch_muon_lr",
    "torch_muon_weight_rms",
    "optimal_lr_adam",
    "optimal_lr_sgdm",
    "optimal_lr_signsgdm",
    "optimal_lr_softsign",
    "relaxation_time",
    "restoring_covariance",
    "restoring_feedback",
    "restoring_fit",
    "restoring_gain",
    "restoring_lag_correlation",
    "restoring_noise_share",
    "restoring_update_lag_sum",
    "restoring_update_rms",
    "restoring_weight_rms",
    "stability_limits",
    "sgdm_scale_invariant_angle",
    "sgdm_scale_invariant_mean_square",
    "sgdm_scale_invariant_weight_rms",
    "signsgdmw_weight_rms",
    "snr_from_momentum_ratio",
    "snr_from_update_rms",
    "softsign",
    "softsign_moments",
    "weight_rms_quick_estimate",
    "weight_rms_schedule",
]
