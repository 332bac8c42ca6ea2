"""Many steps of training on the noisy quadratic (the lab that trains).

The loss is L(w) = 1/2 (w - w*)^T H (w - w*). Training starts at
w_0 = w* + H^-1 g, where the gradient is the lab's g, and step t sees the
minibatch gradient H (w_{t-1} - w*) + xi_t, xi_t ~ N(0, Sigma / B) independent
across steps; the weights move by w_t = w_{t-1} - lr * u_t with u_t the
rule's update. E[L(w_K)] after K steps is computed two ways:

* exactly for SGD and SGDM (``optimizers.SGDM``), whose update is linear in
  the gradients: in the eigenbasis of H every coordinate i is a 2-d linear-
  Gaussian system (error e_i, momentum m_i) driven by its own noise of
  variance (V^T Sigma V)_ii / B, and tr(H Cov) needs only each coordinate's
  own block, so means and 2x2 covariances are propagated step by step,
  vectorised over coordinates and learning rates (the noise part is linear in
  1/B, so batch sizes cost nothing);
* by Monte Carlo for every rule: independent replicas share, step by step,
  the same standard normal draws across the learning-rate grid and the batch
  sizes (common random numbers), so differences between learning rates are
  measured far more precisely than the losses themselves. Replicas come in
  antithetic pairs (noise z and -z): the pair mean cancels the part of the
  loss that is odd in the noise, which dominates at small batch sizes (for
  SGD's first step it leaves the gain term exact), and the pairs are the
  independent units of every error bar.

``momentum_start="zero"`` starts every EMA at zero, as real training does;
``"stationary"`` starts them in their stationary law at the frozen w_0 (the
state the one-step analysis assumes): exactly m_0 ~ N(g, kappa Sigma / B) for
SGDM, a burn-in at the frozen gradient for the Monte Carlo path.

The best constant learning rate (:func:`optimal_lr_after`) is found on a log
grid, refined around the minimum in rounds, and read off a least-squares
cubic in log(lr) through the last round's points; the Monte Carlo error bar is a
jackknife over groups of replicas.
"""

from __future__ import annotations

import math

import numpy as np

from . import _validate
from .optimizers import SGDM, _MomentumRule
from .simulate import BURN_IN_TIMESCALES
from .stats import Estimate, from_replicas, sqrt

MOMENTUM_STARTS = ("zero", "stationary")
METHODS = ("exact", "monte-carlo")
#: learning-rate search: coarse points per decade, points per refinement
#: round (each round keeps the two coarse intervals around the minimum, so it
#: shrinks the log-spacing by (POINTS - 1) / 2 = 3)
PER_DECADE = 2
POINTS = 7
#: rounds after the coarse grid: the last round's spacing is 1.15 / 3^ROUNDS
#: in log(lr), +-13% around the minimum for the Monte Carlo path; the
#: cubic through it (:func:`_vertex`) is accurate to far below 0.5%
#: (``tests/test_training.py`` checks this on the exact losses against the
#: exact path's search, whose ROUNDS_EXACT rounds end at a spacing of 2e-4)
ROUNDS = 3
ROUNDS_EXACT = 8
#: replica groups for the jackknife error bar of the best learning rate
GROUPS = 32
#: Monte Carlo replicas (antithetic pairs count twice)
DEFAULT_REPLICAS = 256
#: Monte Carlo steps drawn per block
BLOCK = 64


def _horizons(steps):
    """``steps`` as a 1-d int array (in the given order), and whether it was a scalar."""
    scalar = np.ndim(steps) == 0
    values = [steps] if scalar else list(np.asarray(steps).ravel())
    out = []
    for k in values:
        if isinstance(k, np.integer):
            k = int(k)
        out.append(_validate.count("steps", k))
    if len(set(out)) != len(out):
        raise ValueError(f"steps must not repeat a horizon, got {steps!r}")
    return np.array(out), scalar


def _check(lab, rule, momentum_start, method):
    if not isinstance(rule, _MomentumRule):
        raise ValueError(f"rule must be an optstats.optimizers update rule, got {type(rule).__name__}")
    if rule.param_shape != ():
        raise ValueError(f"rule must have scalar hyperparameters, got shape {rule.param_shape}")
    if momentum_start not in MOMENTUM_STARTS:
        raise ValueError(f"momentum_start must be one of {MOMENTUM_STARTS}, got {momentum_start!r}")
    linear = type(rule) is SGDM
    if method is None:
        method = "exact" if linear else "monte-carlo"
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "exact" and not linear:
        raise ValueError(f"method='exact' needs a linear rule (optimizers.SGDM), got {rule!r}")
    lam = np.linalg.eigvalsh(lab.H)
    if lam[0] <= 1e-10 * lam[-1]:
        raise ValueError(
            f"H must be invertible to start training at w* + H^-1 g, but its smallest eigenvalue is {lam[0]:.3g}"
        )
    return method


# -- the exact path (SGD, SGDM) -------------------------------------------------
class _LinearGaussian:
    """E[L(w_K)] = mean_part + noise_part / B for SGDM, exactly."""

    def __init__(self, lab, beta1, momentum_start):
        lam, vecs = np.linalg.eigh(lab.H)
        self.lam = lam
        gq = vecs.T @ lab.g
        self.e0 = gq / lam  # w_0 - w* in the eigenbasis
        stationary = momentum_start == "stationary"
        self.m0 = gq if stationary else np.zeros_like(gq)
        self.s = np.diag(vecs.T @ lab.Sigma @ vecs)  # per-coordinate noise variance at B = 1
        self.beta1 = float(beta1)
        # Cov[m_0] = kappa Sigma / B at the stationary start, zero otherwise
        self.pmm0 = (1.0 - self.beta1) / (1.0 + self.beta1) if stationary else 0.0

    def parts(self, lr, horizons, power=1):
        """(mean_part, noise_part), each of shape (len(horizons), *lr.shape).

        1/2 sum_i lam_i^power (E[e_i]^2, Var[e_i] B): power 1 gives the
        loss, power 3 half of E[G^T H G] for the true gradient G = H e.
        """
        b, c = self.beta1, 1.0 - self.beta1
        lr = np.asarray(lr, dtype=float)[..., None]
        lam = self.lam
        # (e, m) <- A (e, m) + (b1, b2) xi with unit noise variance
        a11, a12 = 1.0 - lr * c * lam, -lr * b
        a21, a22 = c * lam, b
        b1, b2 = -lr * c, c
        shape = np.broadcast_shapes(lr.shape, lam.shape)
        me = np.broadcast_to(self.e0, shape).copy()
        mm = np.broadcast_to(self.m0, shape).copy()
        pee, pem = np.zeros(shape), np.zeros(shape)
        pmm = np.full(shape, self.pmm0)
        out_mean = np.empty((len(horizons), *shape[:-1]))
        out_noise = np.empty_like(out_mean)
        wanted = {int(k): i for i, k in enumerate(horizons)}
        # a learning rate beyond stability overflows to inf / nan: that is its loss
        with np.errstate(over="ignore", invalid="ignore"):
            self._run(a11, a12, a21, a22, b1, b2, me, mm, pee, pem, pmm, wanted, out_mean, out_noise, power)
        return out_mean, out_noise

    def _run(self, a11, a12, a21, a22, b1, b2, me, mm, pee, pem, pmm, wanted, out_mean, out_noise, power):
        lam = self.lam**power
        lam_s = lam * self.s
        # the covariance update's coefficients, computed once
        ee = (a11**2, 2 * a11 * a12, a12**2, b1**2)
        em = (a11 * a21, a11 * a22 + a12 * a21, a12 * a22, b1 * b2)
        mm2 = (a21**2, 2 * a21 * a22, a22**2, b2**2)
        for k in range(1, max(wanted) + 1):
            me, mm = a11 * me + a12 * mm, a21 * me + a22 * mm
            pee, pem, pmm = (
                c[0] * pee + c[1] * pem + c[2] * pmm + c[3] for c in (ee, em, mm2)
            )
            if k in wanted:
                out_mean[wanted[k]] = 0.5 * (lam * me**2).sum(axis=-1)
                out_noise[wanted[k]] = 0.5 * (lam_s * pee).sum(axis=-1)


# -- the Monte Carlo path (any rule) --------------------------------------------
def _replica_losses(lab, rule, lr, batch, horizons, seed, replicas, momentum_start):
    """L(w_K) of every replica: shape (len(horizons), *lr.shape, replicas).

    ``lr`` has shape (P, nB) and ``batch`` shape (nB,). The generator is
    re-made from ``seed`` on every call, so every call sees the same noise.
    """
    rng = np.random.default_rng(seed)
    d = lab.dim
    if replicas % 2:
        raise ValueError(f"replicas must be even (antithetic pairs), got {replicas}")
    shape = (*lr.shape, replicas, d)
    scale = (1.0 / np.sqrt(batch))[:, None, None]  # (nB, 1, 1)
    lr4 = lr[..., None, None]
    state = rule.init(shape)
    if momentum_start == "stationary":
        # burn-in at the frozen gradient g: the EMAs reach their stationary law
        warm = rule.init((1, *shape[1:]))
        n = math.ceil(BURN_IN_TIMESCALES * rule.timescale)
        for start in range(0, n, BLOCK):
            z = _antithetic(rng, min(BLOCK, n - start), replicas, d) @ lab._factor.T
            for zi in z:
                rule.step(warm, lab.g + zi * scale)
        for name in rule._state_arrays:
            np.copyto(getattr(state, name), getattr(warm, name))
        state.t = warm.t
    e = np.broadcast_to(np.linalg.solve(lab.H, lab.g), shape).copy()
    out = np.empty((len(horizons), *lr.shape, replicas))
    wanted = {int(k): i for i, k in enumerate(horizons)}
    total = int(max(horizons))
    draw = lambda rng, n: _antithetic(rng, n, replicas, d)  # noqa: E731
    with np.errstate(over="ignore", invalid="ignore"):
        for k, _, _ in _trajectory(lab, rule, state, e, lr4, scale, rng, total, draw):
            if k in wanted:
                out[wanted[k]] = _loss(lab, e)
    return out


def _antithetic(rng, steps, replicas, d):
    """Standard normals of shape (steps, replicas, d), replica r + replicas/2 = -replica r."""
    z = rng.standard_normal((steps, replicas // 2, d))
    return np.concatenate([z, -z], axis=1)


def _pair_means(losses):
    """The mean of each antithetic pair: the independent replicas (last axis)."""
    half = losses.shape[-1] // 2
    return 0.5 * (losses[..., :half] + losses[..., half:])


def _trajectory(lab, rule, state, e, lr, scale, rng, total, draw):
    """Train in place: yield (k, g_k, u_k) after step k = 1..total has moved ``e``.

    ``draw(rng, n)`` gives n steps of standard normals (n, replicas, d); the
    noise of step k is that times the factor of Sigma times ``scale``. The
    one training loop of this module: the Monte Carlo losses and the
    equilibrium statistics both read it.
    """
    grad = np.empty(e.shape)
    for start in range(0, total, BLOCK):
        z = draw(rng, min(BLOCK, total - start)) @ lab._factor.T
        for i, zi in enumerate(z):
            np.matmul(e, lab.H, out=grad)
            grad += zi * scale
            u = rule.step(state, grad)
            e -= lr * u
            yield start + i + 1, grad, u


def _loss(lab, e):
    return 0.5 * np.einsum("...d,...d->...", e @ lab.H, e)


# -- the public functions ---------------------------------------------------------
def training_loss(lab, rule, batch_size, lr, steps, *, rng=None, momentum_start="zero", replicas=None, method=None):
    """E[L(w_K)] after K = ``steps`` steps of constant learning rate ``lr``.

    Returns one :class:`Estimate` of shape (*steps.shape, *lr.shape,
    *batch_size.shape): every learning rate with every batch size (and every
    horizon when ``steps`` is a sequence), in one vectorised run. The exact
    path (SGDM, default for it) has stderr 0 and needs no ``rng``; a learning
    rate beyond stability gives an infinite loss; the Monte
    Carlo path (every other rule, or ``method="monte-carlo"``) needs ``rng``
    and uses ``replicas`` replicas (even; default ``DEFAULT_REPLICAS``), the
    stderr over their antithetic pairs.
    """
    method = _check(lab, rule, momentum_start, method)
    horizons, scalar = _horizons(steps)
    b = _validate.at_least_one("batch_size", batch_size)
    lrs = _validate.positive("lr", lr)
    grid = np.broadcast_to(lrs.reshape(-1, 1), (lrs.size, b.size))
    if method == "exact":
        mean, noise = _LinearGaussian(lab, rule.beta1, momentum_start).parts(lrs.reshape(-1, 1), horizons)
        value = _finite(mean + noise / b.ravel())
        stderr = np.zeros_like(value)
        dof = None
    else:
        _validate.generator("rng", rng)
        replicas = _validate.count("replicas", DEFAULT_REPLICAS if replicas is None else replicas, minimum=4)
        seed = int(rng.integers(2**63))
        losses = _replica_losses(lab, rule, grid, b.ravel(), horizons, seed, replicas, momentum_start)
        est = from_replicas(_pair_means(losses), axis=-1)
        est = Estimate(_finite(est.value), est.stderr, est.dof)
        value, stderr, dof = est.value, est.stderr, est.dof
    shape = (*(() if scalar else np.shape(steps)), *lrs.shape, *b.shape)
    return Estimate(value.reshape(shape), np.asarray(stderr).reshape(shape), dof)


def noise_scale_after(lab, rule, batch_size, lr, steps, *, momentum_start="zero"):
    """McCandlish et al.'s noise scale tr(H Sigma) / E[G^T H G] at w_K, exactly.

    G = H (w_K - w*) is the true gradient after K = ``steps`` steps of SGD or
    SGDM (``optimizers.SGDM``) at constant ``lr``; the expectation is over the
    minibatch noise of the run, propagated exactly as in :func:`training_loss`
    (E[G^T H G] = sum_i lam_i^3 (E[e_i]^2 + Var[e_i]) in the eigenbasis).
    Shape as :func:`training_loss`'s; the gradient noise scale at the start is
    ``lab.b_noise``.
    """
    _check(lab, rule, momentum_start, "exact")
    horizons, scalar = _horizons(steps)
    b = _validate.at_least_one("batch_size", batch_size)
    lrs = _validate.positive("lr", lr)
    mean, noise = _LinearGaussian(lab, rule.beta1, momentum_start).parts(lrs.reshape(-1, 1), horizons, power=3)
    # a diverged run (lr beyond stability) has G unbounded: noise scale 0
    ghg = _finite(2.0 * (mean + noise / b.ravel()))
    value = float(np.trace(lab.H @ lab.Sigma)) / ghg
    shape = (*(() if scalar else np.shape(steps)), *lrs.shape, *b.shape)
    return value.reshape(shape)


def _natural_lr(lab, rule):
    """The deterministic one-step optimum of the rule's noise-free update.

    The rule runs on the exact gradient g from zero state: its first update
    (small by 1 - beta1 for the EMA momentum) and its settled one (u = g for
    SGDM, sign(g) for the sign rules and Adam with eps = 0) give the lowest
    and highest scale. Only a scale for the search's range.
    """
    state = rule.init((lab.dim,))
    scales = []
    for k in range(math.ceil(BURN_IN_TIMESCALES * rule.timescale)):
        u = rule.step(state, lab.g)
        if k == 0:
            scales.append(float(u @ lab.g) / float(u @ lab.H @ u))
    scales.append(float(u @ lab.g) / float(u @ lab.H @ u))
    return min(scales), max(scales)


def _vertex(logx, y):
    """Per column, the log of the minimum of a least-squares cubic y(log lr).

    logx (P, n), y (P, n, ...). A cubic, not a parabola: the loss after many
    steps is skewed in log(lr), and a parabola's vertex inherits a bias of the
    order of the skew times the squared width of the points. The minimum is
    the root of the cubic's derivative with positive curvature; where that
    root is missing or leaves the points' range, the best grid point.
    """
    centre = logx.mean(axis=0)
    x = logx - centre
    X = np.stack([np.ones_like(x), x, x**2, x**3], axis=-1)  # (P, n, 4)
    extra = y.ndim - 2
    Xb = np.broadcast_to(X.reshape(X.shape[:2] + (1,) * extra + (4,)), y.shape + (4,))
    c1, c2, c3 = np.moveaxis(_lstsq(Xb, y)[..., 1:], -1, 0)
    # y' = c1 + 2 c2 x + 3 c3 x^2 = 0 with y'' = 2 c2 + 6 c3 x > 0:
    # x = -c1 / (c2 + sqrt(c2^2 - 3 c1 c3)), stable also as c3 -> 0
    disc = c2**2 - 3.0 * c1 * c3
    root = np.sqrt(np.where(disc > 0, disc, 0.0))
    denom = c2 + root
    v = -c1 / np.where(denom > 0, denom, 1.0)
    half = ((logx.max(axis=0) - logx.min(axis=0)) / 2).reshape((-1,) + (1,) * extra)
    ok = (disc > 0) & (denom > 0) & (np.abs(v) <= half)
    best = np.take_along_axis(logx.reshape(logx.shape + (1,) * extra), np.argmin(y, axis=0)[None], axis=0)[0]
    return np.where(ok, v + centre.reshape((-1,) + (1,) * extra), best)


def _finite(losses):
    """Diverged runs (too large a learning rate) as +inf losses, never nan."""
    return np.where(np.isnan(losses), np.inf, losses)


def _lstsq(X, y):
    """Least squares over axis 0 of X (P, ..., k) and y (P, ...), batched."""
    XtX = np.einsum("p...i,p...j->...ij", X, X)
    Xty = np.einsum("p...i,p...->...i", X, y)
    return np.linalg.solve(XtX, Xty[..., None])[..., 0]


def optimal_lr_after(
    lab, rule, batch_size, steps, *, rng=None, momentum_start="zero", replicas=None, method=None, lr_range=None
):
    """The constant learning rate that minimises E[L(w_K)] after K = ``steps`` steps.

    Shape (*steps.shape, *batch_size.shape). The search: a log grid over
    ``lr_range`` (default 1e-5 to 4 times the rule's noise-free one-step
    optima, :func:`_natural_lr`) at ``PER_DECADE`` points per decade, shared
    by all horizons; ``ROUNDS`` rounds of ``POINTS`` points around the
    minimum; the minimum of a least-squares cubic in log(lr) through the
    last round. A
    minimum at the edge of ``lr_range`` raises ``ValueError`` (widen it).
    Exact path: stderr 0 (the search's own error is far below 0.5%). Monte
    Carlo: every round re-uses the same noise, and the stderr is a jackknife
    over ``GROUPS`` groups of antithetic pairs (dof GROUPS - 1).
    """
    method = _check(lab, rule, momentum_start, method)
    horizons, scalar = _horizons(steps)
    b = _validate.at_least_one("batch_size", batch_size).ravel()
    if lr_range is None:
        low, high = _natural_lr(lab, rule)
        lr_range = (low * 1e-5, high * 4.0)
    lo, hi = (float(x) for x in _validate.positive("lr_range", lr_range))
    if not hi > lo:
        raise ValueError(f"lr_range must be (low, high) with low < high, got {lr_range!r}")
    if method == "exact":
        model = _LinearGaussian(lab, rule.beta1, momentum_start)

        def evaluate(grid, ks):
            mean, noise = model.parts(grid, ks)
            return (mean + noise / b)[..., None]  # one "group"

        groups, rounds = 1, ROUNDS_EXACT
    else:
        _validate.generator("rng", rng)
        replicas = _validate.count("replicas", DEFAULT_REPLICAS if replicas is None else replicas, minimum=2 * GROUPS)
        if replicas % (2 * GROUPS):
            raise ValueError(f"replicas must be a multiple of {2 * GROUPS} ({GROUPS} groups of antithetic pairs), got {replicas}")
        seed = int(rng.integers(2**63))
        groups, rounds = GROUPS, ROUNDS

        def evaluate(grid, ks):
            pairs = _pair_means(_replica_losses(lab, rule, grid, b, ks, seed, replicas, momentum_start))
            return pairs.reshape(*pairs.shape[:-1], groups, -1).mean(axis=-1)

    n = max(3, math.ceil(math.log10(hi / lo) * PER_DECADE) + 1)
    coarse = np.broadcast_to(np.linspace(math.log(lo), math.log(hi), n)[:, None], (n, b.size))
    coarse_vals = _finite(evaluate(np.exp(coarse), horizons))  # (nh, n, nB, groups)
    value = np.empty((len(horizons), b.size))
    stderr = np.zeros_like(value)
    for h, k in enumerate(horizons):
        logx, vals = coarse, coarse_vals[h]
        j = np.argmin(vals.mean(axis=-1), axis=0)
        if np.any((j == 0) | (j == n - 1)):
            raise ValueError(
                f"lr_range: the best learning rate after {k} steps lies at the edge of [{lo:.3g}, {hi:.3g}] "
                f"for batch sizes {b[(j == 0) | (j == n - 1)].tolist()}; pass a wider lr_range"
            )
        for _ in range(rounds):
            jj = np.clip(j, 1, logx.shape[0] - 2)
            cols = np.arange(b.size)
            left, right = logx[jj - 1, cols], logx[jj + 1, cols]
            logx = left + (right - left) * np.linspace(0, 1, POINTS)[:, None]
            vals = _finite(evaluate(np.exp(logx), np.array([k]))[0])
            j = np.argmin(vals.mean(axis=-1), axis=0)
        full = _vertex(logx, vals.mean(axis=-1))
        value[h] = np.exp(full)
        if groups > 1:
            # leave-one-group-out means, their vertices, the jackknife variance
            loo = (vals.sum(axis=-1, keepdims=True) - vals) / (groups - 1)
            vert = _vertex(logx, loo)  # (nB, groups)
            vert = np.exp(vert)
            stderr[h] = np.sqrt((groups - 1) / groups * ((vert - vert.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1))
    shape = (*(() if scalar else np.shape(steps)), *np.shape(batch_size))
    dof = None if groups == 1 else groups - 1
    return Estimate(value.reshape(shape), stderr.reshape(shape), dof)


def equilibrium_statistics(lab, rule, batch_size, lr, *, rng, burn_in, steps, replicas=64):
    """Statistics of training at constant ``lr`` once the weights have equilibrated.

    After ``burn_in`` >= 1 steps from w_0 (zero state; the first averaged
    step needs a previous gradient), ``steps`` more steps are averaged in each of ``replicas`` independent replicas. Returns a dict of
    Estimates of shape lr.shape (stderr over replicas):

    * ``update_rms``: sqrt of the time mean of u_i^2 over coordinates (what the
      update-RMS chapter computes for iid gradients);
    * ``gradient_lag1``: corr(g_t, g_{t-1}) of the minibatch gradients,
      sum over coordinates of g_t g_{t-1} over the sum of g_t^2 (zero for the
      iid noise of that chapter; the restoring force H (w - w*) makes it
      differ once the weights move);
    * ``loss``: the time mean of L(w_t).
    """
    _check(lab, rule, "zero", "monte-carlo")
    b = float(_validate.scalar(_validate.at_least_one, "batch_size", batch_size))
    lrs = _validate.positive("lr", lr)
    _validate.generator("rng", rng)
    burn_in = _validate.count("burn_in", burn_in, minimum=1)
    steps = _validate.count("steps", steps, minimum=2)
    replicas = _validate.count("replicas", replicas, minimum=2)
    d = lab.dim
    shape = (lrs.size, replicas, d)
    state = rule.init(shape)
    e = np.broadcast_to(np.linalg.solve(lab.H, lab.g), shape).copy()
    prev = np.empty(shape)
    sums = np.zeros((4, lrs.size, replicas))  # u^2, g_t g_{t-1}, g^2, loss
    draw = lambda rng, n: rng.standard_normal((n, replicas, d))  # noqa: E731
    steps_run = _trajectory(lab, rule, state, e, lrs.reshape(-1, 1, 1), 1.0 / math.sqrt(b), rng, burn_in + steps, draw)
    for k, grad, u in steps_run:
        if k > burn_in:  # burn_in >= 1, so prev holds g_{k-1}
            sums[0] += np.einsum("lrd,lrd->lr", u, u) / d
            sums[1] += np.einsum("lrd,lrd->lr", grad, prev)
            sums[2] += np.einsum("lrd,lrd->lr", grad, grad)
            sums[3] += _loss(lab, e)
        np.copyto(prev, grad)
    u2 = from_replicas(sums[0] / steps, axis=-1)
    out = {
        "update_rms": sqrt(u2),
        "gradient_lag1": from_replicas(sums[1] / sums[2], axis=-1),
        "loss": from_replicas(sums[3] / steps, axis=-1),
    }
    return {key: Estimate(np.reshape(v.value, lrs.shape), np.reshape(v.stderr, lrs.shape), v.dof) for key, v in out.items()}
