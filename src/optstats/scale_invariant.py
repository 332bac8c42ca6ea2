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


def simulate_sgdm(lr, wd, beta1, *, dim, replicas, steps, burn_in, rng, theta0_rms=1.0, noise_std=1.0, form="ema"):
    """Time averages over ``steps`` after ``burn_in`` of the weight RMS
    sqrt(|theta|^2 / dim) and of the angle between theta_{t-1} and theta_t
    (radians), per replica; returns a dict of Estimates ``"weight_rms"`` and
    ``"angle"``. theta_0 ~ N(0, theta0_rms^2 I); start it near the equilibrium
    to shorten the burn-in (the norm relaxes over about 1/(4 lr wd) steps)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    lr = float(_validate.positive("lr", lr))
    wd = float(_validate.positive("wd", wd))
    beta1 = float(_validate.beta("beta1", beta1))
    if lr * wd >= 1:
        raise ValueError(f"lr * wd must be < 1, got lr={lr!r}, wd={wd!r}")
    dim = _validate.count("dim", dim, minimum=2)
    replicas = _validate.count("replicas", replicas, minimum=2)
    steps = _validate.count("steps", steps)
    burn_in = _validate.count("burn_in", burn_in, minimum=0)
    _validate.generator("rng", rng)
    theta0_rms = float(_validate.positive("theta0_rms", theta0_rms))
    noise_std = float(_validate.positive("noise_std", noise_std))

    theta = rng.standard_normal((replicas, dim)) * theta0_rms
    m = np.zeros_like(theta)
    sq = np.zeros(replicas)
    angle = np.zeros(replicas)
    for t in range(burn_in + steps):
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
        if t >= burn_in:
            new_sq = np.einsum("ij,ij->i", new, new)
            cos = np.einsum("ij,ij->i", theta, new) / np.sqrt(norm_sq * new_sq)
            # the across part |new - (new.theta_hat) theta_hat| / |new|, free
            # of the cancellation 1 - cos has at small angles
            across = new - (np.einsum("ij,ij->i", new, theta) / norm_sq)[:, None] * theta
            angle += np.arctan2(np.sqrt(np.einsum("ij,ij->i", across, across) / new_sq), cos)
            sq += new_sq / dim
        theta = new
    return {
        "weight_rms": stats.sqrt(stats.from_replicas(sq / steps)),
        "angle": stats.from_replicas(angle / steps),
    }
