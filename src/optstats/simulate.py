"""Simulation drivers: stationary statistics of an update rule, with error bars.

All estimators run many independent units at once: coordinates for the rules
that act coordinatewise (the noise models in this book are iid across
coordinates), or whole n x m matrices for a matrix rule (Muon), given by
``matrix_shape``. The units are split into ``groups`` interleaved groups (unit
i in group i mod groups) whose results are independent replicas; the spread
of the group results gives the standard error
(``optstats.stats.from_replicas``). That error bar is honest whatever the
autocorrelation in time, and needs no choice of batch length. A matrix
rule's coordinates are not independent of each other, which is why its
replicas are matrices: every statistic is first averaged over a matrix's
coordinates, then over the group's matrices. Per-coordinate parameters (a gradient mean or scale
that differs between coordinates) should therefore vary in contiguous blocks,
not with a period that divides ``groups``: otherwise the groups differ
systematically, the error bar is inflated, and ratio estimators are biased.

Stationary estimators use the rule's momentum m as a control variate by
default: m is an EMA of the Gaussian gradients, so its stationary statistics
are known exactly, and the part of the noise that u shares with m cancels.

Time runs in blocks: gradients for ``block`` steps are drawn at once, then the
rule steps through them, each step vectorised over all coordinates.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from . import _validate, stats
from .optimizers import _MomentumRule
from .gradients import _Stream

#: default burn-in, in units of the rule's longest EMA memory 1/(1 - beta):
#: the start-up transient decays like beta^t = exp(-t (1 - beta)), so after
#: 14 memories it is below e^-14 ~ 1e-6 of the value.
BURN_IN_TIMESCALES = 14
#: default truncation of the update autocovariance, in the same units
#: (the neglected tail is below e^-12 ~ 6e-6 of the sum).
MAX_LAG_TIMESCALES = 12


class _Layout:
    """Where the units and the replicas sit in the simulated array.

    ``shape`` is grid + (n_units,) + event: the hyperparameter grid, the
    independent units, and the axes of one unit (none for a coordinatewise
    rule, (n, m) for a matrix rule). ``means`` turns per-coordinate values
    into per-group means of shape grid + (groups,)."""

    def __init__(self, shape, groups, event_ndim):
        self.shape, self.groups, self.event_ndim = shape, groups, event_ndim
        self.grid = shape[: len(shape) - 1 - event_ndim]

    def unit_means(self, x: np.ndarray) -> np.ndarray:
        """(..., n_units, *event) -> (..., n_units), the mean over each unit."""
        if self.event_ndim == 0:
            return x
        return x.mean(axis=tuple(range(-self.event_ndim, 0)))

    def means(self, x: np.ndarray) -> np.ndarray:
        """Per-coordinate values -> (..., groups) interleaved group means."""
        return _group_means(self.unit_means(x), self.groups)


def _matrix_shape(matrix_shape):
    if isinstance(matrix_shape, (str, bytes)) or np.ndim(matrix_shape) != 1 or len(matrix_shape) != 2:
        raise ValueError(f"matrix_shape must be two positive integers (n, m), got {matrix_shape!r}")
    for value in matrix_shape:
        if isinstance(value, bool) or not float(value).is_integer() or value < 1:
            raise ValueError(f"matrix_shape must be two positive integers (n, m), got {matrix_shape!r}")
    return tuple(int(v) for v in matrix_shape)


def _check_common(rule, gradients, rng, n_coords, groups, matrix_shape=None):
    if not isinstance(rule, _MomentumRule):
        raise ValueError(f"rule must be an optstats.optimizers update rule, got {type(rule).__name__}")
    if not isinstance(gradients, _Stream):
        raise ValueError(f"gradients must be an optstats.gradients stream, got {type(gradients).__name__}")
    _validate.generator("rng", rng)
    n_coords = _validate.count("n_coords", n_coords)
    groups = _validate.count("groups", groups, minimum=2)
    if n_coords % groups:
        raise ValueError(f"n_coords must be a multiple of groups={groups}, got {n_coords}")
    if rule.event_ndim == 2:
        if matrix_shape is None:
            raise ValueError(f"matrix_shape must be given for the matrix rule {rule!r}, got None")
        event = _matrix_shape(matrix_shape)
        for name, pshape in (("rule", rule.param_shape), ("gradients", gradients.param_shape)):
            if pshape != ():
                raise ValueError(f"the {name}'s hyperparameters must be scalars for a matrix rule, got shape {pshape}")
        return _Layout((n_coords, *event), groups, 2)
    if matrix_shape is not None:
        raise ValueError(f"matrix_shape must be None for the coordinatewise rule {rule!r}, got {matrix_shape!r}")
    shape = np.broadcast_shapes(rule.param_shape, gradients.param_shape, (n_coords,))
    if shape[-1] != n_coords:
        raise ValueError(
            f"the hyperparameters' last axis ({shape[-1]}) must match n_coords={n_coords} or be 1"
        )
    return _Layout(shape, groups, 0)


def _check_control_variate(control_variate, gradients):
    # the control variate's exact moments are those of an EMA of gradients
    # independent in time; for any other stream it would bias the estimate
    if control_variate and not gradients.iid:
        raise ValueError(
            f"control_variate must be False for gradients that are not independent in time, got {gradients!r}"
        )


def _burn_in(rule, burn_in):
    if burn_in is None:
        return math.ceil(BURN_IN_TIMESCALES * rule.timescale)
    return _validate.count("burn_in", burn_in, minimum=0)


def _group_means(per_coord: np.ndarray, groups: int) -> np.ndarray:
    """(..., n) per-coordinate values -> (..., groups) interleaved group means."""
    n = per_coord.shape[-1]
    return per_coord.reshape(*per_coord.shape[:-1], n // groups, groups).mean(axis=-2)


def _update_blocks(rule, gradients, rng, shape, burn_in, steps, block, with_momentum=False):
    """Yield blocks after the burn-in, each of shape (<= block, *shape): the
    updates u_t alone, or with ``with_momentum`` triples (u, m, g) of the
    updates, the momentum EMA and the gradients."""
    size = min(block, steps)
    out = np.empty((size, *shape))
    out_m = np.empty_like(out) if with_momentum else None
    out_g = np.empty_like(out) if with_momentum else None
    filled = 0
    for t, u, state, g in _steps_from_one(rule, gradients, rng, shape, burn_in + steps, block):
        if t <= burn_in:
            continue
        out[filled] = u
        if with_momentum:
            out_m[filled] = state.m
            out_g[filled] = g
        filled += 1
        if filled == size or t == burn_in + steps:
            yield (out[:filled], out_m[:filled], out_g[:filled]) if with_momentum else out[:filled]
            filled = 0


def update_moments(
    rule, gradients, *, rng, n_coords=10_000, steps=4_000, burn_in=None, groups=40, block=256, control_variate=True,
    matrix_shape=None,
):
    """Stationary E[u] and E[u^2] of ``rule`` on ``gradients``, averaged over coordinates.

    Returns a dict with Estimates ``"mean"`` and ``"second"``; their shape is the
    hyperparameter grid (the coordinate axis is averaged out). With
    ``control_variate`` the momentum m, whose stationary moments are exact
    (E[m] = mu, E[m^2] = mu^2 + (1-beta1)/(1+beta1) s^2), corrects each estimate
    (see ``weight_rms``). For a matrix rule (Muon) ``matrix_shape`` = (n, m)
    gives the matrices' shape and ``n_coords`` counts the matrices.
    """
    layout = _check_common(rule, gradients, rng, n_coords, groups, matrix_shape)
    shape, groups = layout.shape, layout.groups
    _check_control_variate(control_variate, gradients)
    if control_variate and groups < 3:
        raise ValueError(f"groups must be >= 3 with a control variate, got {groups}")
    steps = _validate.count("steps", steps)
    burn_in = _burn_in(rule, burn_in)
    block = _validate.count("block", block)
    sums = {name: np.zeros(shape) for name in ("u", "uu", "m", "mm")}
    for blocks in _update_blocks(rule, gradients, rng, shape, burn_in, steps, block, with_momentum=control_variate):
        u, m, _ = blocks if control_variate else (blocks, None, None)
        sums["u"] += u.sum(axis=0)
        sums["uu"] += np.einsum("t...,t...->...", u, u)
        if control_variate:
            sums["m"] += m.sum(axis=0)
            sums["mm"] += np.einsum("t...,t...->...", m, m)
    group = {name: layout.means(total / steps) for name, total in sums.items()}
    if not control_variate:
        return {"mean": stats.from_replicas(group["u"]), "second": stats.from_replicas(group["uu"])}
    mu = np.broadcast_to(gradients.mean, shape)
    var_m = (1.0 - rule.momentum_beta) / (1.0 + rule.momentum_beta) * gradients.noise_std**2
    exact_m = layout.means(mu)
    exact_mm = layout.means(np.broadcast_to(mu**2 + var_m, shape))
    return {
        "mean": _control_variate_estimate(group["u"], group["m"], exact_m),
        "second": _control_variate_estimate(group["uu"], group["mm"], exact_mm),
    }


def update_rms(
    rule, gradients, *, rng, n_coords=10_000, steps=4_000, burn_in=None, groups=40, block=256, control_variate=True,
    matrix_shape=None,
):
    """Stationary RMS of the update, sqrt(E[u^2]) averaged over coordinates.

    Time averages after ``burn_in`` steps (default: 14 times the rule's longest
    EMA memory); error bar from ``groups`` independent coordinate groups, mapped
    through the square root by the delta method; see ``update_moments``.
    """
    moments = update_moments(
        rule, gradients, rng=rng, n_coords=n_coords, steps=steps, burn_in=burn_in, groups=groups, block=block,
        control_variate=control_variate, matrix_shape=matrix_shape,
    )
    return stats.sqrt(moments["second"])


def momentum_ratio(
    rule, gradients, *, rng, n_coords=10_000, steps=4_000, burn_in=None, groups=40, block=256, matrix_shape=None
):
    """Stationary ||m_t|| / ||g_t||: the momentum's norm over the gradient's, as sqrt(sum m^2 / sum g^2).

    The sums run over the coordinates of each group and the steps after the
    burn-in; the replicas are the per-group ratios (their O(1/(coordinates x
    steps)) ratio bias is far below the standard error), mapped through the
    square root by the delta method. The momentum is the same EMA of g for
    every rule, so this measures the statistic post 11267 reads the SNR from.
    """
    layout = _check_common(rule, gradients, rng, n_coords, groups, matrix_shape)
    shape = layout.shape
    steps = _validate.count("steps", steps)
    burn_in = _burn_in(rule, burn_in)
    block = _validate.count("block", block)
    mm = np.zeros(shape)
    gg = np.zeros(shape)
    for _, m, g in _update_blocks(rule, gradients, rng, shape, burn_in, steps, block, with_momentum=True):
        mm += np.einsum("t...,t...->...", m, m)
        gg += np.einsum("t...,t...->...", g, g)
    return stats.sqrt(stats.from_replicas(layout.means(mm) / layout.means(gg)))


def update_rms_trajectory(rule, gradients, *, steps, rng, n_coords=10_000, groups=40, block=256, matrix_shape=None):
    """RMS of the update u_t over coordinates at the step numbers in ``steps``, from step 1.

    Each coordinate runs the rule from its zero state; the RMS at step t is
    sqrt(E[u_t^2]) over the ensemble of coordinates (no time averaging), with
    the error bar from ``groups`` independent groups. Returns one Estimate with
    a trailing axis over ``steps``.
    """
    layout = _check_common(rule, gradients, rng, n_coords, groups, matrix_shape)
    shape = layout.shape
    steps_arr = _validate.step_numbers("steps", steps)
    block = _validate.count("block", block)
    records = np.empty((*layout.grid, layout.groups, steps_arr.size))
    wanted = {int(s): j for j, s in enumerate(steps_arr)}
    for t, u, _, _ in _steps_from_one(rule, gradients, rng, shape, int(steps_arr[-1]), block):
        j = wanted.get(t)
        if j is not None:
            records[..., j] = layout.means(u * u)
    return stats.sqrt(stats.from_replicas(np.moveaxis(records, -2, -1)))


def _steps_from_one(rule, gradients, rng, shape, last, block):
    """Yield (t, u_t, state, g_t) for t = 1..last, the gradients drawn in blocks.

    u_t and g_t are views into buffers that the next step overwrites."""
    state = rule.init(shape)
    buf = np.empty((min(block, last), *shape))
    draw = gradients.sampler(rng, shape)
    t = 0
    while t < last:
        n = min(block, last - t)
        g = draw(n, buf[:n])
        for k in range(n):
            u = rule.step(state, g[k])
            t += 1
            yield t, u, state, g[k]


def weight_update_products(
    rule, gradients, *, lr, wd, theta0_rms, rng, n_coords=10_000, steps=2_000, burn_in=None, groups=40, block=256,
    matrix_shape=None,
):
    """Time-averaged E[theta_{t-1} u_t], E[u_t^2] and E[theta_{t-1}^2] along a run from theta_0.

    These are the three terms of the squared weight recursion
    theta_t^2 = beta3^2 theta_{t-1}^2 - 2 beta3 lr theta_{t-1} u_t + lr^2 u_t^2,
    whose cross term post 11307's quick estimate drops. theta_0 ~ N(0,
    theta0_rms^2); averages run over the ``steps`` after ``burn_in`` (default:
    14 memories of the rule's slowest EMA, enough for the update statistics and
    for the cross term, which is built from the last few memories of updates;
    E[theta^2] is stationary only if theta0_rms starts it there). Returns a dict
    of Estimates ``"theta_u"``, ``"uu"``, ``"theta_theta"``, ``"cos"`` (the
    per-group cosine of theta_{t-1} and u_t, averaged over steps) and
    ``"angle"`` (the per-group angle between theta_{t-1} and theta_t in
    radians, averaged over steps: each group's coordinates form one vector).
    """
    layout = _check_common(rule, gradients, rng, n_coords, groups, matrix_shape)
    shape = layout.shape
    lr, wd = _check_lr_wd(lr, wd)
    theta0_rms = float(_validate.nonnegative("theta0_rms", theta0_rms))
    steps = _validate.count("steps", steps)
    burn_in = _burn_in(rule, burn_in)
    block = _validate.count("block", block)
    theta = rng.standard_normal(shape) * theta0_rms
    names = ("theta_u", "uu", "theta_theta", "cos", "angle")
    sums = {name: np.zeros((*layout.grid, layout.groups)) for name in names}
    beta3 = 1.0 - lr * wd
    for t, u, state, _ in _steps_from_one(rule, gradients, rng, shape, burn_in + steps, block):
        if t > burn_in:
            tu, uu, tt = (layout.means(x) for x in (theta * u, u * u, theta * theta))
            sums["theta_u"] += tu
            sums["uu"] += uu
            sums["theta_theta"] += tt
            sums["cos"] += tu / np.sqrt(uu * tt)
            # theta_t = beta3 theta_{t-1} - lr u_t: the part of theta_t along
            # theta_{t-1} and the part across it (written so, the small angle
            # carries no cancellation; max(., 0) only absorbs rounding)
            along = (beta3 * tt - lr * tu) / np.sqrt(tt)
            across = lr * np.sqrt(np.maximum(uu - tu * tu / tt, 0.0))
            sums["angle"] += np.arctan2(across, along)
        theta *= beta3
        np.multiply(u, lr, out=state.tmp)
        theta -= state.tmp
    return {name: stats.from_replicas(total / steps) for name, total in sums.items()}


def _check_lr_wd(lr, wd):
    lr = _validate.positive("lr", lr)
    wd = _validate.positive("wd", wd)
    if lr.ndim or wd.ndim:
        raise ValueError("lr and wd must be scalars for the stationary weight RMS")
    if lr * wd >= 1:
        raise ValueError(f"lr * wd must be < 1 (the decay per step), got lr={float(lr)!r}, wd={float(wd)!r}")
    return float(lr), float(wd)


def weight_rms(
    rule,
    gradients,
    *,
    lr,
    wd,
    rng,
    n_coords=10_000,
    steps=None,
    burn_in=None,
    max_lag=None,
    groups=40,
    block=512,
    control_variate=True,
    matrix_shape=None,
):
    """Stationary RMS of theta under theta <- theta - lr (u + wd theta).

    Estimated without simulating theta: with beta3 = 1 - lr wd and updates that
    do not depend on theta (every noise model here), the stationary weights are
    theta = -lr sum_k beta3^k u_{t-k}, hence per coordinate

        E[theta^2] = lr^2/(1 - beta3^2) sum_d beta3^|d| C(d) + lr^2 mean_u^2/(1 - beta3)^2,

    with C the autocovariance of u. C(d) is summed to ``max_lag`` (default 12
    memories of the rule). mean_u^2 is zero for zero-mean gradients (odd rules,
    symmetric noise); otherwise it is estimated without bias as a product of
    two independent means. The work is O(steps) per coordinate, whereas theta
    itself needs about 1/(lr wd) steps to forget its start. ``steps`` defaults
    to max(4000, 40 * max_lag).

    With ``control_variate`` (the default) the same functional is estimated for
    the rule's momentum m, whose exact value is known (m is an EMA of the
    Gaussian gradients), and c (estimate_m - exact_m) is subtracted, with c
    fitted across the coordinate groups (one degree of freedom spent). This is
    exact for SGDM (u = m) and removes most of the noise for rules close to it:
    for AdamW (0.9, 0.95) at lr wd = 1e-4 the stderr drops from about 0.15% to
    0.02% of the value, for SignSGDM-W to about 0.06%.

    Without a control variate, at zero mean, the stderr is about 0.15% with the
    defaults. With a mean, the term lr^2 mean_u^2/(1 - beta3)^2 dominates when
    beta3 is near 1, and its relative error is twice that of the estimated
    mean_u: raise ``n_coords`` or ``steps`` for small signal-to-noise ratios.

    ``wd`` may be a 1-d array of decays: one run of the rule serves them all
    (only the lagged sums depend on beta3) and the result gains a trailing
    axis over ``wd``; that is how a grid of lr wd is simulated for a rule
    whose steps are costly (Muon's SVDs). For a matrix rule ``matrix_shape``
    = (n, m) and ``n_coords`` counts the matrices (see the module docstring).
    """
    layout = _check_common(rule, gradients, rng, n_coords, groups, matrix_shape)
    shape, groups = layout.shape, layout.groups
    _check_control_variate(control_variate, gradients)
    if control_variate and groups < 3:
        raise ValueError(f"groups must be >= 3 with a control variate, got {groups}")
    scalar_wd = np.ndim(wd) == 0
    if not scalar_wd and np.ndim(wd) != 1:
        raise ValueError(f"wd must be a scalar or a 1-d array, got shape {np.shape(wd)}")
    lr_wd = [_check_lr_wd(lr, w) for w in np.atleast_1d(wd)]
    lr = lr_wd[0][0]
    burn_in = _burn_in(rule, burn_in)
    if max_lag is None:
        max_lag = math.ceil(MAX_LAG_TIMESCALES * rule.timescale)
    max_lag = _validate.count("max_lag", max_lag)
    if steps is None:
        steps = max(4_000, 40 * max_lag)
    steps = _validate.count("steps", steps, minimum=2 * max_lag + 2)
    block = _validate.count("block", block)
    beta3s = np.array([1.0 - lr * w for _, w in lr_wd])
    identical = all(len(p) == 0 or p[-1] == 1 for p in (rule.param_shape, gradients.param_shape))
    zero_mean = rule.odd and gradients.is_centred
    acc_u = _LongRunSums(shape, max_lag, beta3s, steps, block)
    acc_m = _LongRunSums(shape, max_lag, beta3s, steps, block) if control_variate else None
    for blocks in _update_blocks(rule, gradients, rng, shape, burn_in, steps, block, with_momentum=control_variate):
        if control_variate:
            acc_u.add(blocks[0])
            acc_m.add(blocks[1])
        else:
            acc_u.add(blocks)
    # per decay: (n_decays, *grid, groups) -> (*grid, n_decays, groups)
    theta_sq_u = np.moveaxis(acc_u.theta_sq(lr, layout, identical, zero_mean), 0, -2)
    if not control_variate:
        est = stats.sqrt(stats.from_replicas(theta_sq_u))
    else:
        theta_sq_m = np.moveaxis(acc_m.theta_sq(lr, layout, identical, zero_mean), 0, -2)
        exact_m = np.stack(
            [_momentum_theta_sq(rule, gradients, lr, b3, max_lag, layout) for b3 in beta3s], axis=-2
        )
        est = stats.sqrt(_control_variate_estimate(theta_sq_u, theta_sq_m, exact_m))
    if scalar_wd:
        return stats.Estimate(est.value[..., 0], est.stderr[..., 0], est.dof)
    return est


def _control_variate_estimate(samples, control, exact):
    """Mean of per-group ``samples`` (..., groups) corrected by a control variate.

    ``control`` holds the same groups' estimates of a quantity whose exact value
    ``exact`` is known (here: functionals of the momentum m, an EMA of Gaussian
    gradients). Returns samples - c (control - exact), c = Cov/Var fitted across
    the groups; one degree of freedom is spent on c.
    """
    groups = samples.shape[-1]
    ds = samples - samples.mean(axis=-1, keepdims=True)
    dc = control - control.mean(axis=-1, keepdims=True)
    var_c = (dc * dc).sum(axis=-1, keepdims=True)
    safe = np.where(var_c > 0, var_c, 1.0)
    c = np.where(var_c > 0, (ds * dc).sum(axis=-1, keepdims=True) / safe, 0.0)
    est = stats.from_replicas(samples - c * (control - exact))
    return stats.Estimate(est.value, est.stderr * np.sqrt((groups - 1) / (groups - 2)), groups - 2)


class _LongRunSums:
    """Raw per-coordinate sums of a stationary series x_s, gathered block by block,
    from which E[theta^2] for theta = -lr sum_k beta3^k x_{t-k} is estimated,
    for each beta3 in ``beta3s`` at once (only the lagged sums depend on it).

    Lagged products use z_s = sum_{d=1..D} beta3^d x_{s-d}, from the recursion
    z_s = beta3 z_{s-1} + beta3 x_{s-1} - beta3^(D+1) x_{s-1-D}, over s >= D.
    """

    def __init__(self, shape, max_lag, beta3s, steps, block):
        self.D, self.steps, self.half = max_lag, steps, steps // 2
        self.beta3s = np.asarray(beta3s, dtype=float)
        self.sum = np.zeros(shape)
        self.sum_first = np.zeros(shape)  # over the first half of the run
        self.sum_sq = np.zeros(shape)
        self.sum_lagged = np.zeros((self.beta3s.size, *shape))
        self.seq = np.zeros((max_lag + 1 + block, *shape))  # x_{t0-D-1} .. x_{t0+n-1}
        self.x = np.empty((block, *shape))
        self.z_prev = np.zeros((self.beta3s.size, *shape))
        self.t0 = 0

    def add(self, block):
        D, n = self.D, block.shape[0]
        seq = self.seq
        seq[D + 1 : D + 1 + n] = block
        u = seq[D + 1 : D + 1 + n]
        self.sum += u.sum(axis=0)
        if self.t0 < self.half:
            self.sum_first += u[: max(0, min(n, self.half - self.t0))].sum(axis=0)
        self.sum_sq += np.einsum("t...,t...->...", u, u)
        xs = self.x[:n]
        first_valid = max(0, D - self.t0)  # z_s is complete only once s >= D
        for i, b3 in enumerate(self.beta3s):
            np.multiply(seq[D : D + n], b3, out=xs)
            xs -= b3 ** (D + 1) * seq[:n]
            z, _ = lfilter([1.0], [1.0, -b3], xs, axis=0, zi=(b3 * self.z_prev[i])[None])
            self.z_prev[i] = z[-1]
            if first_valid < n:
                self.sum_lagged[i] += np.einsum("t...,t...->...", u[first_valid:], z[first_valid:])
        seq[: D + 1] = seq[n : n + D + 1]
        self.t0 += n

    def theta_sq(self, lr, layout, identical, zero_mean):
        """Per-group estimates of E[theta^2], shape (n_beta3, *grid, groups).

        Raw (uncentred) moments: centring each coordinate by its own sample mean
        would bias every lag by -Var(mean), amplified ~(1 + 2 sum beta3^d) by the
        sum; instead the squared mean is subtracted once, estimated without bias.
        """
        D, steps, groups = self.D, self.steps, layout.groups
        mean = self.sum / steps
        if zero_mean:
            # an odd rule under symmetric zero-mean noise: E[x] = 0 exactly
            mean_sq = np.zeros((*layout.grid, groups))
        elif identical:
            # one E[x] per grid point: the product of the means over two disjoint
            # halves of each group's units is unbiased for E[x]^2 (units, not
            # coordinates: a matrix's coordinates are not independent)
            unit_mean = layout.unit_means(mean)
            members = unit_mean.reshape(*unit_mean.shape[:-1], unit_mean.shape[-1] // groups, groups)
            k = members.shape[-2] // 2
            if k < 1:
                raise ValueError(f"n_coords must be at least 2 * groups={2 * groups}, got {unit_mean.shape[-1]}")
            mean_sq = members[..., :k, :].mean(axis=-2) * members[..., k : 2 * k, :].mean(axis=-2)
        else:
            # coordinates differ: the product of the means of the two halves of the
            # run, per coordinate (independent up to the boundary, O(tau^2 / T^2))
            first = self.sum_first / self.half
            second = (self.sum - self.sum_first) / (steps - self.half)
            mean_sq = layout.means(first * second)
        out = []
        for i, b3 in enumerate(self.beta3s):
            c_weights = b3 * (1.0 - b3**D) / (1.0 - b3)  # sum_{d=1..D} beta3^d
            raw = layout.means(self.sum_sq / steps + 2.0 * self.sum_lagged[i] / (steps - D))
            # E[theta^2] = lr^2/(1-b3^2) sum_|d|<=D b3^|d| (R(d) - mu^2) + lr^2 mu^2/(1-b3)^2
            mean_coef = 1.0 / (1.0 - b3) ** 2 - (1.0 + 2.0 * c_weights) / (1.0 - b3**2)
            out.append(lr**2 * raw / (1.0 - b3**2) + lr**2 * mean_coef * mean_sq)
        return np.stack(out)


def _momentum_theta_sq(rule, gradients, lr, beta3, D, layout):
    """Exact expectation of _LongRunSums.theta_sq for the momentum m (the control
    variate), per coordinate group: m is stationary with mean mu and
    autocovariance (1-b1)/(1+b1) s^2 b1^|d|, s the gradient noise std."""
    b1 = rule.momentum_beta
    shape = layout.shape
    s2 = np.broadcast_to(gradients.noise_std**2, shape)
    mu2 = np.broadcast_to(gradients.mean**2, shape)
    var_m = (1.0 - b1) / (1.0 + b1) * s2
    r = b1 * beta3
    with np.errstate(invalid="ignore", divide="ignore"):
        lagged = np.where(r > 0, r * (1.0 - r**D) / (1.0 - r), 0.0)  # sum_{d=1..D} (b1 b3)^d
    long_run = var_m * (1.0 + 2.0 * lagged)
    value = lr**2 * long_run / (1.0 - beta3**2) + lr**2 * mu2 / (1.0 - beta3) ** 2
    return layout.means(np.broadcast_to(value, shape))


def _per_step(name, value, n_steps, check):
    arr = check(name, value)
    if arr.ndim == 0:
        return np.full(n_steps, float(arr))
    if arr.ndim != 1 or arr.shape[0] < n_steps:
        raise ValueError(f"{name} must be a scalar or a 1-d array of at least {n_steps} per-step values, got shape {arr.shape}")
    return arr


def _momentum_weight_moments(rule, gradients, lr_t, wd_t, theta0_rms, last):
    """Exact E[theta_c_t^2], t = 1..last, for the control weights
    theta_c_t = (1 - lr_t wd_t) theta_c_{t-1} - lr_t m_t driven by the rule's
    momentum m (an EMA of Gaussian gradients) from the same theta_0.

    (theta_c, m) is jointly Gaussian, so its means and covariances follow a
    deterministic recursion, stepped once per step on the hyperparameter shape."""
    b1 = np.asarray(rule.momentum_beta, dtype=float)
    c1 = 1.0 - b1
    mu = np.asarray(gradients.mean, dtype=float)
    s2 = np.asarray(gradients.noise_std, dtype=float) ** 2
    pshape = np.broadcast_shapes(b1.shape, mu.shape, s2.shape)
    mean_m = np.zeros(pshape)
    mean_th = np.zeros(pshape)
    var_m = np.zeros(pshape)
    cov_th_m = np.zeros(pshape)
    var_th = np.full(pshape, theta0_rms**2)
    out = np.empty((last, *pshape))
    for i in range(last):
        a, lr = 1.0 - lr_t[i] * wd_t[i], lr_t[i]
        mean_m = b1 * mean_m + c1 * mu
        var_m = b1 * b1 * var_m + c1 * c1 * s2
        cov_th_new_m = a * b1 * cov_th_m  # Cov(theta_{t-1}, m_t)
        var_th = a * a * var_th - 2.0 * lr * cov_th_new_m + lr * lr * var_m
        cov_th_m = cov_th_new_m - lr * var_m
        mean_th = a * mean_th - lr * mean_m
        out[i] = var_th + mean_th**2
    return out


def weight_rms_trajectory(
    rule,
    gradients,
    *,
    lr,
    wd,
    steps,
    theta0_rms,
    rng,
    n_coords=10_000,
    groups=40,
    block=256,
    control_variate=True,
    matrix_shape=None,
):
    """RMS of theta_t at the step numbers in ``steps``, simulated from step 1.

    theta_0 ~ N(0, theta0_rms^2) per coordinate, the rule starts from zero state,
    and theta_t = theta_{t-1} - lr_t (u_t + wd_t theta_{t-1}). ``lr`` and ``wd``
    are scalars or per-step arrays (entry 0 is step 1). Returns one Estimate
    whose value and stderr have a trailing axis over ``steps``.

    With ``control_variate`` (the default) the same weights are also run with
    the rule's momentum m in place of u, from the same theta_0; their exact
    mean square is known (``_momentum_weight_moments``), and c (control -
    exact) is subtracted at each recorded step with c fitted across the groups
    (one degree of freedom spent). For AdamW (0.9, 0.95) under a WSD schedule
    this shrinks the standard error about eightfold at 6% more CPU time
    (``make bench``); for SGDM (u = m) the result is exact.
    """
    layout = _check_common(rule, gradients, rng, n_coords, groups, matrix_shape)
    shape, groups = layout.shape, layout.groups
    _check_control_variate(control_variate, gradients)
    if control_variate and groups < 3:
        raise ValueError(f"groups must be >= 3 with a control variate, got {groups}")
    steps_arr = _validate.step_numbers("steps", steps)
    last = int(steps_arr[-1])
    lr_t = _per_step("lr", lr, last, _validate.nonnegative)
    wd_t = _per_step("wd", wd, last, _validate.nonnegative)
    theta0_rms = float(_validate.nonnegative("theta0_rms", theta0_rms))
    if np.any(lr_t[:last] * wd_t[:last] >= 1):
        raise ValueError("lr * wd must be < 1 at every step")
    block = _validate.count("block", block)

    theta = rng.standard_normal(shape) * theta0_rms
    records = np.empty((*layout.grid, groups, steps_arr.size))
    wanted = {int(s): j for j, s in enumerate(steps_arr)}
    if control_variate:
        theta_c = theta.copy()
        records_c = np.empty_like(records)
    for t, u, state, _ in _steps_from_one(rule, gradients, rng, shape, last, block):
        decay, lr_now = 1.0 - lr_t[t - 1] * wd_t[t - 1], lr_t[t - 1]
        theta *= decay
        np.multiply(u, lr_now, out=state.tmp)
        theta -= state.tmp
        if control_variate:
            theta_c *= decay
            np.multiply(state.m, lr_now, out=state.tmp)
            theta_c -= state.tmp
        j = wanted.get(t)
        if j is not None:
            records[..., j] = layout.means(theta**2)
            if control_variate:
                records_c[..., j] = layout.means(theta_c**2)
    samples = np.moveaxis(records, -2, -1)
    if not control_variate:
        return stats.sqrt(stats.from_replicas(samples))
    exact = _momentum_weight_moments(rule, gradients, lr_t, wd_t, theta0_rms, last)[steps_arr - 1]
    # per coordinate group, laid out like samples: (..., steps, groups)
    pad = (1,) * (len(shape) - (exact.ndim - 1))  # align the hyperparameter axes with shape's
    exact = exact.reshape(exact.shape[:1] + pad + exact.shape[1:])
    exact = layout.means(np.broadcast_to(exact, (steps_arr.size, *shape)))
    control = np.moveaxis(records_c, -2, -1)
    return stats.sqrt(_control_variate_estimate(samples, control, np.moveaxis(exact, 0, -2)))


def update_autocorrelation(
    rule, gradients, *, max_lag, rng, n_coords=10_000, steps=4_000, burn_in=None, groups=40, block=256,
    matrix_shape=None,
):
    """Stationary lag correlation of the update, R(d) = E[u_t . u_{t+d}] / E[u_t . u_t]
    for d = 0..max_lag (raw moments: for the odd rules under centred noise
    E[u] = 0).

    Per group, the lagged products are summed over the group's coordinates and
    the ``steps`` after the burn-in, and the ratio of the sums is the replica
    (its O(1/(coordinates x steps)) ratio bias is far below the stderr). Returns
    one Estimate with a trailing axis over the lags.
    """
    layout = _check_common(rule, gradients, rng, n_coords, groups, matrix_shape)
    shape = layout.shape
    max_lag = _validate.count("max_lag", max_lag)
    steps = _validate.count("steps", steps, minimum=max_lag + 1)
    burn_in = _burn_in(rule, burn_in)
    block = _validate.count("block", block)
    products = np.zeros((max_lag + 1, *shape))
    # the last max_lag updates of the previous blocks, then the current block
    seq = np.zeros((max_lag + block, *shape))
    seen = 0
    for u in _update_blocks(rule, gradients, rng, shape, burn_in, steps, block):
        n = u.shape[0]
        seq[max_lag : max_lag + n] = u
        for d in range(max_lag + 1):
            # pairs (u_{s-d}, u_s) with both inside the window after the burn-in
            first = max(0, d - seen)
            if first < n:
                products[d] += np.einsum(
                    "t...,t...->...", seq[max_lag + first : max_lag + n], seq[max_lag + first - d : max_lag + n - d]
                )
        seq[:max_lag] = seq[n : n + max_lag]
        seen += n
    # the same number of pairs enters every group, so the ratio of means is the ratio of sums
    pairs = (steps - np.arange(max_lag + 1)).reshape((max_lag + 1,) + (1,) * (len(layout.grid) + 1))
    group = np.stack([layout.means(products[d]) for d in range(max_lag + 1)]) / pairs
    return stats.from_replicas(np.moveaxis(group / group[0], 0, -2))
