"""SGDM with weight decay on a scale-invariant layer: the gradient is orthogonal
to the weights and scales as 1/|theta| (a layer followed by a normalisation).

Unlike the rest of the book, here the gradient depends on the weights, so the
weights are simulated directly: ``replicas`` independent layers of ``dim``
weights each, the error bar from the spread of their time averages. The noise
is pure: g_t = sigma P(theta_{t-1}) xi_t / |theta_{t-1}|, with xi_t ~ N(0, I)
and P the projection orthogonal to theta_{t-1}.

Two forms of the optimizer:

- ``"ema"`` (the book's): m_t = beta1 m_{t-1} + (1 - beta1) g_t,
  theta_t = theta_{t-1} - lr (m_t + wd theta_{t-1});
- ``"heavy-ball"`` (``torch.optim.SGD`` with momentum and weight decay, the
  form Kosson et al. analyse): b_t = beta1 b_{t-1} + g_t + wd theta_{t-1},
  theta_t = theta_{t-1} - lr b_t, the decay passing through the momentum.
"""

from __future__ import annotations

import numpy as np

from . import _validate, stats

FORMS = ("ema", "heavy-ball")


def _check(lr, wd, beta1, dim, replicas, rng, theta0_rms, noise_std, form):
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    lr = float(_validate.positive("lr", lr))
    wd = float(_validate.positive("wd", wd))
    beta1 = float(_validate.beta("beta1", beta1))
    if lr * wd >= 1:
        raise ValueError(f"lr * wd must be < 1, got lr={lr!r}, wd={wd!r}")
    dim = _validate.count("dim", dim, minimum=2)
    replicas = _validate.count("replicas", replicas, minimum=2)
    _validate.generator("rng", rng)
    theta0_rms = float(_validate.positive("theta0_rms", theta0_rms))
    noise_std = float(_validate.positive("noise_std", noise_std))
    return lr, wd, beta1, dim, replicas, theta0_rms, noise_std


def _run(lr, wd, beta1, dim, replicas, rng, theta0_rms, noise_std, form, last):
    """Yield (t, theta_{t-1}, |theta_{t-1}|^2, theta_t) for t = 1..last, one row per replica."""
    theta = rng.standard_normal((replicas, dim)) * theta0_rms
    m = np.zeros_like(theta)
    for t in range(1, last + 1):
        norm_sq = np.einsum("ij,ij->i", theta, theta)
        xi = rng.standard_normal(theta.shape)
        # the part of xi orthogonal to theta, scaled by 1/|theta|
        xi -= (np.einsum("ij,ij->i", xi, theta) / norm_sq)[:, None] * theta
        g = xi * (noise_std / np.sqrt(norm_sq))[:, None]
        if form == "ema":
            m *= beta1
            m += (1.0 - beta1) * g
            new = theta * (1.0 - lr * wd) - lr * m
        else:
            m *= beta1
            m += g + wd * theta
            new = theta - lr * m
        yield t, theta, norm_sq, new
        theta = new


def simulate_sgdm(lr, wd, beta1, *, dim, replicas, steps, burn_in, rng, theta0_rms=1.0, noise_std=1.0, form="ema"):
    """Time averages over ``steps`` after ``burn_in`` of the weight RMS
    sqrt(|theta|^2 / dim) and of the angle between theta_{t-1} and theta_t
    (radians), per replica; returns a dict of Estimates ``"weight_rms"`` and
    ``"angle"``. theta_0 ~ N(0, theta0_rms^2 I); start it near the equilibrium
    to shorten the burn-in (the norm relaxes over about 1/(4 lr wd) steps)."""
    lr, wd, beta1, dim, replicas, theta0_rms, noise_std = _check(
        lr, wd, beta1, dim, replicas, rng, theta0_rms, noise_std, form)
    steps = _validate.count("steps", steps)
    burn_in = _validate.count("burn_in", burn_in, minimum=0)
    sq = np.zeros(replicas)
    angle = np.zeros(replicas)
    for t, theta, norm_sq, new in _run(lr, wd, beta1, dim, replicas, rng, theta0_rms, noise_std, form,
                                       burn_in + steps):
        if t > burn_in:
            new_sq = np.einsum("ij,ij->i", new, new)
            along = np.einsum("ij,ij->i", new, theta) / norm_sq
            # the across part |new - along theta| / |new|, free of the
            # cancellation 1 - cos has at small angles
            across = new - along[:, None] * theta
            angle += np.arctan2(np.sqrt(np.einsum("ij,ij->i", across, across)), along * np.sqrt(norm_sq))
            sq += new_sq / dim
    return {
        "weight_rms": stats.sqrt(stats.from_replicas(sq / steps)),
        "angle": stats.from_replicas(angle / steps),
    }


def sgdm_trajectory(lr, wd, beta1, *, dim, replicas, steps, rng, theta0_rms=1.0, noise_std=1.0, form="ema"):
    """The weight RMS sqrt(|theta_t|^2 / dim) at the step numbers in ``steps``
    (increasing, >= 1), from theta_0 ~ N(0, theta0_rms^2 I): one Estimate
    with a trailing axis over ``steps``, the replicas giving the error bar."""
    lr, wd, beta1, dim, replicas, theta0_rms, noise_std = _check(
        lr, wd, beta1, dim, replicas, rng, theta0_rms, noise_std, form)
    steps_arr = _validate.step_numbers("steps", steps)
    wanted = {int(s): j for j, s in enumerate(steps_arr)}
    records = np.empty((replicas, steps_arr.size))
    for t, _, _, new in _run(lr, wd, beta1, dim, replicas, rng, theta0_rms, noise_std, form, int(steps_arr[-1])):
        j = wanted.get(t)
        if j is not None:
            records[:, j] = np.einsum("ij,ij->i", new, new) / dim
    return stats.sqrt(stats.from_replicas(records, axis=0))
