"""The first probe, :class:`AdamWatch`: kept for ``optstats.network``.

Superseded by :class:`optstats.probe.Watch`, which attaches itself to the
optimizer's step hooks, costs a few percent of a step and works under FSDP2.
``AdamWatch`` stays, unchanged, only because the real-network chapter's
``network.train`` uses its float64 buffers (:class:`Flat`) for the lag
correlations; it must be called after every step by hand, keeps a float64
copy of the weights and is meant for the chapter's small model only.

:class:`AdamWatch` reads the optimizer's own state after each step and
reports, per parameter tensor, the quantities the book's chapters predict:
Adam's update direction u = mhat / (sqrt(vhat) + eps) exactly as torch
computes it (bias correction included), the weights, the momentum against
this step's gradient, and the rotation of the weights. Everything is
computed in float64 on copies, under ``torch.no_grad``, and draws no random
numbers, so watching never changes the training.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

# the fields of one parameter's record, in the order they are documented:
# those a stored run keeps (optstats.runs)
from ..runs import FIELDS


class AdamWatch:
    """Per-parameter statistics of ``torch.optim.Adam`` or ``AdamW``.

    ``watch = AdamWatch(model, optimizer)``, then after every
    ``optimizer.step()`` call ``watch.record()``: a dict keyed by parameter
    name (as ``model.named_parameters()`` gives it) of dicts of floats,
    one per name in :data:`FIELDS`:

    ``update_rms``      RMS of u_t = mhat_t / (sqrt(vhat_t) + eps), from torch's state
    ``weight_rms``      RMS of theta_t
    ``momentum_ratio``  ||m_t|| / ||g_t||: torch's ``exp_avg`` against this step's gradient
    ``cos_theta_u``     cos(theta_{t-1}, u_t)
    ``angle``           the angle between theta_{t-1} and theta_t, in radians
    ``grad_norm``       ||g_t||

    theta_{t-1} is the parameter as it was at the previous ``record()`` (or
    at construction), so call ``record()`` after every step. Where
    theta_{t-1} is zero (a zero-initialised bias at the first step) the
    cosine and the angle are undefined and reported as nan. Parameters
    without a gradient or without optimizer state (frozen, unused, or not in
    the optimizer) are skipped. Only plain Adam/AdamW are read: ``amsgrad``
    and ``maximize`` change the update and are refused.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
            raise ValueError(f"optimizer must be torch.optim.Adam or torch.optim.AdamW, got {type(optimizer).__name__}")
        self.model = model
        self.optimizer = optimizer
        self._group = {}
        for group in optimizer.param_groups:
            for flag in ("amsgrad", "maximize"):
                if group.get(flag):
                    raise ValueError(f"optimizer {flag}=True is not supported (it changes Adam's update direction)")
            for p in group["params"]:
                self._group[id(p)] = group
        with torch.no_grad():
            self._previous = {
                name: p.detach().to(torch.float64, copy=True).flatten()
                for name, p in model.named_parameters()
                if id(p) in self._group
            }
        #: the last record's flat float64 vectors, for statistics beyond FIELDS
        #: (the real-network chapter's lag correlations); see :class:`Flat`
        self.flat = None

    def record(self) -> dict:
        """Statistics of the step just taken, per parameter name (see the class)."""
        names, params, states, constants = [], [], [], []
        for name, p in self.model.named_parameters():
            group = self._group.get(id(p))
            state = self.optimizer.state.get(p, {})
            if group is None or p.grad is None or "exp_avg" not in state:
                continue
            beta1, beta2 = group["betas"]
            t = float(state["step"])
            # torch's Adam: denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
            # step = lr / (1 - beta1^t) * m / denom
            constants.append((1.0 - beta1**t, math.sqrt(1.0 - beta2**t), group["eps"]))
            names.append(name)
            params.append(p)
            states.append(state)
        if not names:
            return {}
        sizes = [p.numel() for p in params]
        with torch.no_grad():
            # all tensors at once, as flat float64 vectors: the cost of a
            # record is a few dozen tensor operations, whatever the model's
            # number of tensors (per-tensor loops cost 2-3x more on small models)
            g = _flat([p.grad for p in params])
            theta = _flat(params)
            m = _flat([s["exp_avg"] for s in states])
            v = _flat([s["exp_avg_sq"] for s in states])
            before = torch.cat([self._previous[name] for name in names])
            if len(set(constants)) == 1:
                debias1, debias2, eps = constants[0]
            else:  # groups with different betas, eps or step counts
                per = torch.tensor(constants, dtype=torch.float64).T
                debias1, debias2, eps = per.repeat_interleave(torch.tensor(sizes), dim=1, output_size=g.numel())
            denominator = torch.sqrt(v).div_(debias2).add_(eps)
            u = m.div(denominator).div_(debias1)
            step = theta - before
            products = torch.stack([u * u, theta * theta, m * m, g * g, before * u,
                                    before * before, before * theta, step * step, before * step])
            sums = torch.stack([block.sum(1) for block in products.split(sizes, dim=1)])
            self._previous.update(zip(names, theta.split(sizes)))
        self.flat = Flat(tuple(names), tuple(sizes), g, denominator, u)
        # one transfer to Python for all tensors
        return {name: _fields(n, *row) for name, n, row in zip(names, sizes, sums.tolist())}


class Flat(NamedTuple):
    """The flat float64 vectors of :meth:`AdamWatch.record`, tensor by tensor.

    ``names`` and ``sizes`` give the segments in order; ``gradient`` is g_t,
    ``denominator`` is torch's sqrt(vhat_t) + eps, so that
    ``gradient / denominator`` is the gradient as Adam's step normalises it,
    and ``update`` is u_t = mhat_t / denominator.
    They are the probe's working buffers: use them before the next record.
    """

    names: tuple
    sizes: tuple
    gradient: torch.Tensor
    denominator: torch.Tensor
    update: torch.Tensor


def _flat(tensors) -> torch.Tensor:
    return torch.cat([x.detach().flatten() for x in tensors]).to(torch.float64)


def _fields(n, uu, tt, mm, gg, bu, bb, bt, dd, bd) -> dict:
    """One parameter's record from its n entries' dot products (u.u, theta.theta, ...)."""
    nan = math.nan
    # the angle between before and theta = before + step: atan2 of
    # |before ^ step| = sqrt(bb dd - bd^2) (Lagrange's identity, no
    # cancellation at small angles) against before . theta
    wedge = math.sqrt(max(bb * dd - bd * bd, 0.0))
    return {
        "update_rms": math.sqrt(uu / n),
        "weight_rms": math.sqrt(tt / n),
        "momentum_ratio": math.sqrt(mm / gg) if gg > 0 else nan,
        "cos_theta_u": bu / math.sqrt(bb * uu) if bb > 0 and uu > 0 else nan,
        "angle": math.atan2(wedge, bt) if bb > 0 else nan,
        "grad_norm": math.sqrt(gg),
    }
