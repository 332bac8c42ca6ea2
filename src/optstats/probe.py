"""Statistics of a real PyTorch Adam/AdamW during real training.

The one module of the package that imports torch; nothing else imports it,
so the rest of ``optstats`` works without torch installed.

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

import torch

#: the fields of one parameter's record, in the order they are documented
FIELDS = ("update_rms", "weight_rms", "momentum_ratio", "cos_theta_u", "angle", "grad_norm")


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """The angle between two vectors, accurate also when it is tiny.

    2 atan2(|a^ - b^|, |a^ + b^|) with unit vectors a^, b^: arccos of the
    cosine loses half the digits below about 1e-4 radians, and equilibrium
    angular updates are of that order.
    """
    na, nb = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    if na == 0 or nb == 0:
        return math.nan
    ua, ub = a / na, b / nb
    return 2.0 * math.atan2(float(torch.linalg.vector_norm(ua - ub)), float(torch.linalg.vector_norm(ua + ub)))


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    if not torch.any(a) or not torch.any(b):
        return math.nan
    return float(torch.dot(a, b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)))


def _rms(x: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean(x * x)))


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
        self._previous = {}
        self._snapshot()

    def _snapshot(self) -> None:
        with torch.no_grad():
            self._previous = {
                name: p.detach().to(torch.float64).flatten().clone()
                for name, p in self.model.named_parameters()
                if id(p) in self._group
            }

    def record(self) -> dict:
        """Statistics of the step just taken, per parameter name (see the class)."""
        out = {}
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                group = self._group.get(id(p))
                state = self.optimizer.state.get(p, {})
                if group is None or p.grad is None or "exp_avg" not in state:
                    continue
                beta1, beta2 = group["betas"]
                eps = group["eps"]
                t = float(state["step"])
                m = state["exp_avg"].detach().to(torch.float64).flatten()
                v = state["exp_avg_sq"].detach().to(torch.float64).flatten()
                g = p.grad.detach().to(torch.float64).flatten()
                theta = p.detach().to(torch.float64).flatten()
                # torch's Adam: denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
                # step = lr / (1 - beta1^t) * m / denom
                u = (m / (1.0 - beta1**t)) / (torch.sqrt(v) / math.sqrt(1.0 - beta2**t) + eps)
                before = self._previous[name]
                out[name] = {
                    "update_rms": _rms(u),
                    "weight_rms": _rms(theta),
                    "momentum_ratio": float(torch.linalg.vector_norm(m) / torch.linalg.vector_norm(g)),
                    "cos_theta_u": _cos(before, u),
                    "angle": _angle(before, theta),
                    "grad_norm": float(torch.linalg.vector_norm(g)),
                }
        self._snapshot()
        return out
