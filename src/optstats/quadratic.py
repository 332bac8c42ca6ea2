"""A noisy quadratic: the ground truth for the learning-rate / batch-size law.

Post 11301 (and 11260 before it) expands the expected loss after one update
-eta * phi to second order,

    E[L(w - eta phi)] - L(w) = -eta E[phi]^T g + eta^2/2 tr(E[phi phi^T] H),

which is minimised by eta* = E[phi]^T g / tr(E[phi phi^T] H). The posts then
approximate E[phi] and E[phi phi^T] in mean field. On a quadratic loss with
gradient g, Hessian H and per-sample gradient covariance Sigma the expansion is
exact, so running the real update rule on gradients g + noise of covariance
Sigma / B (the gradient held fixed, as the posts assume for a slowly varying
g) and measuring the two expectations gives the true eta*(B), up to Monte
Carlo error. :meth:`NoisyQuadratic.optimal_lr` does that.
"""

from __future__ import annotations

import math

import numpy as np

from . import _validate, training
from .optimizers import _MomentumRule
from .simulate import BURN_IN_TIMESCALES
from .stats import Estimate

#: eigenvalues above -PSD_RTOL * (largest |eigenvalue|) count as rounding, not
#: as negative curvature or negative variance
PSD_RTOL = 1e-10


def _psd_matrix(name: str, value, dim: int) -> np.ndarray:
    m = _validate.finite(name, value)
    if m.shape != (dim, dim):
        raise ValueError(f"{name} must be a ({dim}, {dim}) matrix to match g of length {dim}, got shape {m.shape}")
    scale = max(float(np.max(np.abs(m))), np.finfo(float).tiny)
    if not np.allclose(m, m.T, rtol=0.0, atol=1e-12 * scale):
        raise ValueError(f"{name} must be symmetric, got {value!r}")
    lowest = float(np.linalg.eigvalsh(m)[0])
    if lowest < -PSD_RTOL * scale:
        raise ValueError(
            f"{name} must be positive semi-definite, but its smallest eigenvalue is {lowest:.3g}"
        )
    return m


class NoisyQuadratic:
    """Loss with gradient ``g``, Hessian ``H`` and per-sample gradient covariance ``Sigma``.

    A minibatch gradient of batch size B is g + noise with covariance Sigma / B,
    drawn independently at every step. ``g`` is a vector of length d; ``H`` and
    ``Sigma`` are symmetric positive semi-definite (d, d) matrices, and g must
    not lie in the null space of H (so that eta_max is finite).
    """

    def __init__(self, g, H, Sigma):
        g = _validate.finite("g", g)
        if g.ndim != 1 or g.size == 0:
            raise ValueError(f"g must be a non-empty vector, got shape {g.shape}")
        self.g = g
        self.dim = g.size
        self.H = _psd_matrix("H", H, self.dim)
        self.Sigma = _psd_matrix("Sigma", Sigma, self.dim)
        self.gHg = float(g @ self.H @ g)
        if self.gHg <= 0:
            raise ValueError("g must not lie in the null space of H (g^T H g must be > 0)")
        w, v = np.linalg.eigh(self.Sigma)
        # noise = z @ factor.T has covariance factor @ factor.T = Sigma
        self._factor = v * np.sqrt(np.clip(w, 0.0, None))

    # -- the scales of posts 11260 / 11301 -------------------------------------
    @property
    def sigma(self) -> np.ndarray:
        """Per-coordinate per-sample noise standard deviations sqrt(diag Sigma)."""
        return np.sqrt(np.diag(self.Sigma))

    @property
    def diagonal_noise(self) -> bool:
        """Whether the coordinates' noises are independent (Sigma diagonal)."""
        return bool(np.all(self.Sigma == np.diag(np.diag(self.Sigma))))

    @property
    def eta_max(self) -> float:
        """SGD's largest useful learning rate g^T g / g^T H g (B -> infinity)."""
        return float(self.g @ self.g) / self.gHg

    @property
    def b_noise(self) -> float:
        """tr(Sigma H) / g^T H g."""
        return float(np.trace(self.Sigma @ self.H)) / self.gHg

    @property
    def b_simple(self) -> float:
        """tr(Sigma) / g^T g: the noise scale with the SNR averaged over coordinates."""
        return float(np.trace(self.Sigma)) / float(self.g @ self.g)

    def __repr__(self) -> str:
        return f"NoisyQuadratic(dim={self.dim}, b_simple={self.b_simple:.4g}, b_noise={self.b_noise:.4g})"

    # -- the ground truth ------------------------------------------------------
    def optimal_lr(
        self,
        rule,
        batch_size,
        *,
        rng,
        chains=256,
        steps=2_000,
        burn_in=None,
        rel_halfwidth=0.008,
        max_steps=64_000,
        block=64,
        control_variates=True,
    ) -> Estimate:
        """The true eta*(B) = E[phi]^T g / E[phi^T H phi] of ``rule`` in steady state.

        ``rule`` is an ``optstats.optimizers`` object with scalar
        hyperparameters; ``batch_size`` a number or array (every B >= 1 runs
        in one vectorised simulation). ``chains`` independent copies of the
        optimizer state run for ``steps`` steps after ``burn_in`` (default:
        ``simulate.BURN_IN_TIMESCALES`` of the rule's longest EMA memories);
        while the 95% interval of some B is wider than ``rel_halfwidth`` of
        its value, the run continues for as many steps again, up to
        ``max_steps``. The chains share no randomness, so their time averages
        are independent replicas: the standard error is the delta-method
        error of the ratio of two means over chains, with chains - 1 degrees
        of freedom (chains - 3 with ``control_variates``, see
        :func:`_ratio_with_controls`).
        """
        if not isinstance(rule, _MomentumRule):
            raise ValueError(f"rule must be an optstats.optimizers update rule, got {type(rule).__name__}")
        if rule.param_shape != ():
            raise ValueError(f"rule must have scalar hyperparameters, got shape {rule.param_shape}")
        b = _validate.at_least_one("batch_size", batch_size)
        _validate.generator("rng", rng)
        chains = _validate.count("chains", chains, minimum=4)
        steps = _validate.count("steps", steps)
        max_steps = _validate.count("max_steps", max_steps)
        block = _validate.count("block", block)
        rel_halfwidth = float(_validate.positive("rel_halfwidth", rel_halfwidth))
        if burn_in is None:
            burn_in = math.ceil(BURN_IN_TIMESCALES * rule.timescale)
        burn_in = _validate.count("burn_in", burn_in, minimum=0)

        shape = (b.size, chains, self.dim)
        b_flat = b.ravel()
        noise_scale = (1.0 / np.sqrt(b_flat))[:, None, None]
        kappa = float((1.0 - rule.momentum_beta) / (1.0 + rule.momentum_beta))
        # E[(m - g)^T H (m - g)] in steady state: Cov[m] = kappa Sigma / B
        curv_control_mean = (kappa * float(np.trace(self.Sigma @ self.H)) / b_flat)[:, None]
        state = rule.init(shape)
        # running sums over steps, per (B, chain): phi^T g, phi^T H phi, and the
        # two controls (m - g)^T g and (m - g)^T H (m - g) - its mean
        sums = np.zeros((4, *shape[:2]))

        def run(n, record):
            for start in range(0, n, block):
                size = min(block, n - start)
                grads = rng.standard_normal((size, *shape)) @ self._factor.T
                grads *= noise_scale
                grads += self.g
                for i in range(size):
                    u = rule.step(state, grads[i])
                    if record:
                        dev = state.m - self.g
                        sums[0] += u @ self.g
                        sums[1] += np.einsum("kcd,kcd->kc", u @ self.H, u)
                        sums[2] += dev @ self.g
                        sums[3] += np.einsum("kcd,kcd->kc", dev @ self.H, dev) - curv_control_mean

        run(burn_in, record=False)
        done = 0
        todo = steps
        while True:
            run(todo, record=True)
            done += todo
            est = _ratio_with_controls(sums / done, control_variates, b.shape)
            if np.all(est.relative_halfwidth95 <= rel_halfwidth) or done >= max_steps:
                return est
            todo = min(done, max_steps - done)

    # -- training: many steps (optstats.training) ------------------------------
    def training_loss(self, rule, batch_size, lr, steps, *, rng=None, momentum_start="zero", replicas=None, method=None):
        """E[L(w_K)] after ``steps`` steps from w* + H^-1 g; see :func:`optstats.training.training_loss`."""
        return training.training_loss(
            self, rule, batch_size, lr, steps, rng=rng, momentum_start=momentum_start, replicas=replicas, method=method
        )

    def optimal_lr_after(
        self, rule, batch_size, steps, *, rng=None, momentum_start="zero", replicas=None, method=None, lr_range=None
    ):
        """The constant learning rate minimising E[L(w_K)]; see :func:`optstats.training.optimal_lr_after`."""
        return training.optimal_lr_after(
            self,
            rule,
            batch_size,
            steps,
            rng=rng,
            momentum_start=momentum_start,
            replicas=replicas,
            method=method,
            lr_range=lr_range,
        )


def _ratio_with_controls(means, control_variates, shape) -> Estimate:
    """eta = mean(gain) / mean(curv) over chains, with its delta-method stderr.

    The momentum's deviation m - g is the same linear filter of the noise for
    every rule, so (m - g)^T g and (m - g)^T H (m - g) have exactly known
    steady-state means (0, and kappa tr(Sigma H) / B, subtracted already).
    They are strongly correlated with the update's statistics when the noise
    dominates, so the gain is corrected by the multiple of the two controls
    that best explains the ratio's residual gain - eta curv over chains (least
    squares): the expectation does not move, and the residual variance, which
    is what the delta method's error bar measures, can only shrink.
    """
    gain, curv, control_gain, control_curv = means
    chains = gain.shape[1]
    dof = chains - 1
    eta = gain.mean(axis=1) / curv.mean(axis=1)
    if control_variates:
        controls = np.stack([control_gain, control_curv], axis=-1)  # (k, chains, 2)
        centred = controls - controls.mean(axis=1, keepdims=True)
        resid = gain - eta[:, None] * curv
        resid = resid - resid.mean(axis=1, keepdims=True)
        normal = np.einsum("kci,kcj->kij", centred, centred)
        coef = np.einsum("kij,kj->ki", np.linalg.pinv(normal), np.einsum("kci,kc->ki", centred, resid))
        gain = gain - np.einsum("kci,ki->kc", controls, coef)
        eta = gain.mean(axis=1) / curv.mean(axis=1)
        dof = chains - 3  # two fitted coefficients
    resid = gain - eta[:, None] * curv
    stderr = resid.std(axis=1, ddof=1) / math.sqrt(chains) / np.abs(curv.mean(axis=1))
    return Estimate(eta.reshape(shape), stderr.reshape(shape), dof)
