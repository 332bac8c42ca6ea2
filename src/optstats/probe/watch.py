"""The instrument: per-tensor statistics of torch's AdamW or Muon during training.

:class:`Watch` attaches itself to the optimizer's own step hooks, so it sees
exactly the steps the optimizer takes (a step a gradient scaler skips never
reaches the hooks; ``zero_grad`` before or after makes no difference), and
on every ``every``-th step reads the optimizer's state:

``update_rms``      RMS of the update direction u_t: Adam's mhat/(sqrt(vhat)+eps)
                    as torch computes it; Muon's orthogonalised update O_t
                    before the (adjusted) learning rate
``weight_rms``      RMS of theta_t
``momentum_ratio``  ||m_t|| / ||g_t||: torch's ``exp_avg`` (Adam) or
                    ``momentum_buffer`` (Muon) against this step's gradient
``cos_theta_u``     cos(theta_{t-1}, u_t)
``angle``           the angle between theta_{t-1} and theta_t, radians
``grad_norm``       ||g_t|| (``p.grad``, before any coupled L2 term)
``sqrt_vhat_rms``   sqrt(mean(vhat_t)), the gradient scale Adam divides by
                    (Adam only; nan for Muon)
``step``, ``lr``, ``wd``  the parameter's own step count and its group's rates

``angle`` and ``cos_theta_u`` are always those of the one step t, whatever
``every`` is. Where theta_{t-1} is zero (a zero-initialised bias at its first
step) they are undefined: nan in Python, null in the log.

Cost (see ``make bench``). Every statistic is a sum over one tensor, taken on
the tensor's device in chunks (at most ``_CHUNK`` entries): a chunk is cast to
float64 and its dot products accumulate in float64, so no tensor-sized
float64 copy is ever made, and the per-tensor sums are moved to the host in
one transfer per record. Non-record steps cost a counter and two floats per
param group. A record costs about 20 tensor operations per tensor plus its
memory traffic: on a 13.9M-parameter GPT that is ~5% of a step, but on a
model of a few dozen tiny tensors (the real-network chapter's, 18k
parameters) the per-operation overhead is about a step itself, so record
every 10-100 steps there.

theta_{t-1}. For Adam/AdamW with float32 or float64 weights nothing is kept:
theta_{t-1} = (theta_t + lr u_t) / (1 - lr wd) is exact algebra, so every sum
that involves theta_{t-1} is a combination of theta_t.theta_t, theta_t.u_t
and u_t.u_t (see ``_fields``). What it neglects is the rounding of the step
itself in the weights' dtype, ~eps_dtype |theta| per entry: it changes the
angle by a relative (eps_dtype W / (lr U))^2 / 2 (the rounding is a random
vector added in quadrature), below 1e-6 for float32 once lr U / W > 1e-4, and
cos_theta_u by ~eps_dtype / |cos|. The tests measure both against a kept copy.
Whatever the dtype, the angle comes from Lagrange's identity on float64 sums,
|x|^2 |y|^2 - (x.y)^2, which cancels when the step is parallel to the
weights: its absolute error is ~ |theta_t - theta_{t-1}| / |theta| sqrt(eps64),
about 1e-8 of the step's relative size (a relative 1e-5 of a typical angle;
only a tensor whose step is within 1e-4 rad of parallel to it, such as a
LayerNorm gain of ones under L2 decay, gets less).
For bfloat16/float16 weights that rounding is as large as the step, so on
record steps the pre-hook keeps theta_{t-1} in the weights' own dtype. Muon's
update is not in its state: on record steps the pre-hook keeps theta_{t-1}
(own dtype) and O_t = ((1 - lr wd) theta_{t-1} - theta_t) / lr_adjusted, in
float64 per chunk; its relative error is ~eps_dtype W / (lr_adjusted U), so
Muon is read for float32/float64 weights only.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from array import array

import numpy as np
import torch

from .. import report

#: the most entries per chunk of a tensor: float64 temporaries of 1 MiB each
#: (2^16 and 2^18, preallocated buffers, and one product X X^T of the stacked
#: chunk were all measured slower on the bench's GPT). A watch uses chunks of
#: at most 1/64 of its largest tensor's bytes (a power of two, at least
#: _MIN_CHUNK): a record keeps at most ~8 float64 chunk vectors (64 bytes an
#: entry) alive, so its temporaries stay within one largest tensor
_CHUNK = 1 << 17
_MIN_CHUNK = 1 << 12
#: tensors up to this many entries are summed together (``_small_sums``)
_SMALL = 1 << 12
#: the sums of one tensor, in the order of its row in a record
_SUMS = ("uu", "tt", "tu", "mm", "gg", "v", "bb", "bu", "bt", "dd", "bd")
_COL = {name: i for i, name in enumerate(_SUMS)}
#: weights whose own rounding is far below a step (see the module docstring)
_EXACT_DTYPES = (torch.float32, torch.float64)
#: the adjust_lr_fn values torch 2.13's Muon accepts, and the scale convention
#: of ``theory.muon_scale_conventions`` each one is
MUON_ADJUST_LR = {None: "keller-jordan", "original": "keller-jordan", "match_rms_adamw": "moonlight"}


def _is_dtensor(x) -> bool:
    return type(x).__name__ == "DTensor" and hasattr(x, "to_local")


def _local(x):
    """The local shard of a DTensor, the tensor itself otherwise (detached, flat)."""
    if _is_dtensor(x):
        x = x.to_local()
    return x.detach().reshape(-1)


def _clean_name(name: str) -> str:
    # torch.compile wraps the model in an OptimizedModule whose parameters are
    # "_orig_mod.<name>"; nested compiles add one prefix per level
    parts = [p for p in name.split(".") if p != "_orig_mod"]
    return ".".join(parts)


def _kind(optimizer) -> str:
    if isinstance(optimizer, torch.optim.Adam):  # AdamW is a subclass of Adam
        return "adam"
    muon = getattr(torch.optim, "Muon", None)
    if muon is not None and isinstance(optimizer, muon):
        return "muon"
    raise ValueError(
        f"optimizer must be torch.optim.Adam, torch.optim.AdamW or torch.optim.Muon (or a subclass), "
        f"got {type(optimizer).__module__}.{type(optimizer).__name__}"
    )


def _scalar(x) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


class Watch:
    """Per-tensor statistics of an Adam/AdamW or Muon optimizer, every ``every`` steps.

    ``watch = Watch(model, optimizer, every=10, log="run.jsonl")`` and train
    as usual: on every step t with t % every == 0 (t counts the optimizer's
    steps, from its state when the watch is attached) ``watch.last`` holds
    the record, a dict keyed by parameter name (every name
    ``model.named_parameters(remove_duplicate=False)`` gives a tensor, with
    ``torch.compile``'s ``_orig_mod.`` removed) of dicts of floats, fields
    as in the module docstring. ``watch.scalars()`` flattens it for
    TensorBoard or W&B, ``log=`` appends one JSON line per record (read back
    by ``optstats report``), ``watch.summary()`` compares the records with
    the theory, ``watch.remove()`` detaches the hooks.

    Parameters with ``requires_grad=False`` are not recorded; a trainable
    parameter without a gradient on a record step (torch skips it) is left
    out of that record with a warning. Under DDP the watch works unchanged
    (every rank holds the same parameters and state, so the same numbers:
    log on rank 0). Under FSDP2 (``fully_shard``, DTensor parameters sharded
    on a 1-D mesh) each rank sums its shard and one ``all_reduce`` per record
    gives every rank the numbers of the unsharded model.
    """

    def __init__(self, model, optimizer, *, every: int = 1, log=None):
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.kind = _kind(optimizer)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a whole number >= 1, got {every!r}")
        self.model, self.optimizer, self.every = model, optimizer, every
        names = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), []).append(_clean_name(name))
        self._names_of = names
        self._check_groups()
        # the watched tensors: (parameter, group index, its names), in the
        # optimizer's order; frozen parameters are left out
        self._params = []
        for gi, group in enumerate(optimizer.param_groups):
            for p in group["params"]:
                if id(p) not in names:
                    raise ValueError(
                        f"optimizer param_groups[{gi}] holds a parameter of shape {tuple(p.shape)} that is not "
                        f"in model.named_parameters(): the watch names tensors by the model"
                    )
                if p.requires_grad:
                    self._params.append((p, gi, tuple(names[id(p)])))
        if not self._params:
            raise ValueError("the optimizer holds no trainable parameter of the model (requires_grad=True)")
        self._check_params()
        largest = max(_local(p).numel() * p.element_size() for p, _, _ in self._params)
        self._chunk = max(_MIN_CHUNK, min(_CHUNK, 1 << max(0, (largest // 64).bit_length() - 1)))
        self.names = tuple(n for _, _, ns in self._params for n in ns)
        steps = [_scalar(optimizer.state[p]["step"]) for p, _, _ in self._params
                 if "step" in optimizer.state.get(p, {})]
        if self.kind == "muon" and any(optimizer.state.get(p) for p, _, _ in self._params):
            # torch's Muon keeps no step count: the watch counts from here
            steps = []
        #: the optimizer's step count when the watch was attached
        self.start_step = int(max(steps, default=0))
        self._t = self.start_step
        self._recording = False
        self._before = {}
        self._lr = [array("d") for _ in optimizer.param_groups]
        self._wd = [array("d") for _ in optimizer.param_groups]
        self._record_steps = array("l")
        self._values = []  # one (names, fields) float64 array per record
        self._logged = [0] * len(optimizer.param_groups)  # schedule entries already written
        self.last = {}
        self._header = self._make_header()
        # the log is opened for each line (records are rare): nothing stays open
        self._log = None if log is None else os.fspath(log)
        if self._log is not None:
            self._append(self._header)
        self._hooks = [optimizer.register_step_pre_hook(self._pre_hook),
                       optimizer.register_step_post_hook(self._post_hook)]

    # ------------------------------------------------------------ checks

    def _check_groups(self):
        for gi, group in enumerate(self.optimizer.param_groups):
            if self.kind == "adam":
                for flag in ("amsgrad", "maximize"):
                    if group.get(flag):
                        raise ValueError(
                            f"optimizer param_groups[{gi}] has {flag}=True: not supported (it changes Adam's "
                            f"update; the book's theory is for plain Adam/AdamW)"
                        )
            else:
                fn = group.get("adjust_lr_fn")
                if fn not in MUON_ADJUST_LR:
                    raise ValueError(
                        f"optimizer param_groups[{gi}] has adjust_lr_fn={fn!r}: torch's Muon accepts "
                        f"{sorted(MUON_ADJUST_LR, key=str)}"
                    )

    def _check_params(self):
        for p, gi, names in self._params:
            if self.kind == "muon":
                # a DTensor is fine: torch 2.13's Muon orthogonalises the whole
                # (redistributed) matrix, and O_t is recovered entrywise on each shard
                if p.dtype not in _EXACT_DTYPES:
                    raise ValueError(
                        f"parameter {names[0]!r} is {p.dtype}: Muon's update is recovered from the change of "
                        f"the weights, which {p.dtype} rounds as much as the step; float32 or float64 weights only"
                    )
            if _is_dtensor(p):
                bad = [pl for pl in p.placements if not pl.is_shard()]
                if bad or p.device_mesh.ndim != 1:
                    raise ValueError(
                        f"parameter {names[0]!r} is a DTensor with placements {p.placements} on a "
                        f"{p.device_mesh.ndim}-d mesh: the watch reads FSDP2's Shard placements on a 1-d mesh"
                    )

    def _check_state(self, p, names, state):
        want = ("exp_avg", "exp_avg_sq", "step") if self.kind == "adam" else ("momentum_buffer",)
        missing = [k for k in want if k not in state]
        extra = [k for k in ("max_exp_avg_sq",) if k in state]
        if missing or extra:
            raise RuntimeError(
                f"optimizer state of {names[0]!r} is not what torch's {type(self.optimizer).__name__} writes: "
                f"missing {missing}, unexpected {extra} (keys {sorted(state)})"
            )
        for k in want[:2] if self.kind == "adam" else want:
            if tuple(state[k].shape) != tuple(p.shape):
                raise RuntimeError(
                    f"optimizer state {k!r} of {names[0]!r} has shape {tuple(state[k].shape)}, the parameter "
                    f"{tuple(p.shape)}: not what torch's optimizer writes"
                )

    # ------------------------------------------------------------ hooks

    def _pre_hook(self, optimizer, args, kwargs):
        # before torch reads the groups: amsgrad switched on later fails here, clearly
        self._check_groups()
        self._recording = (self._t + 1) % self.every == 0
        if not self._recording:
            return
        # theta_{t-1} in its own dtype, only where it cannot be reconstructed
        with torch.no_grad():
            self._before = {
                id(p): _local(p).clone()
                for p, _, _ in self._params
                if p.grad is not None and (self.kind == "muon" or p.dtype not in _EXACT_DTYPES)
            }

    def _post_hook(self, optimizer, args, kwargs):
        self._t += 1
        for gi, group in enumerate(optimizer.param_groups):
            if gi >= len(self._lr):
                raise RuntimeError("a param group was added after the watch was attached: attach a new Watch")
            self._lr[gi].append(_scalar(group["lr"]))
            self._wd[gi].append(_scalar(group["weight_decay"]))
        if self._recording:
            self._recording = False
            try:
                self._record()
            finally:
                self._before = {}

    def remove(self):
        """Detach the watch from the optimizer; its records stay."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # ------------------------------------------------------------ the record

    def _record(self):
        opt = self.optimizer
        taken, missing = [], []
        for p, gi, names in self._params:
            if p.grad is None:
                missing.extend(names)
                continue
            state = opt.state.get(p, {})
            self._check_state(p, names, state)
            taken.append((p, gi, names, state))
        if missing:
            warnings.warn(
                f"Watch: no gradient at step {self._t} for {missing}: torch did not update them; "
                f"left out of this record",
                RuntimeWarning,
                stacklevel=3,
            )
        with torch.no_grad():
            rows = self._sums(taken)
        steps = [self._t if self.kind == "muon" else state["step"] for _, _, _, state in taken]
        record, values = {}, np.full((len(self.names), len(report.FIELDS)), np.nan)
        index = {n: i for i, n in enumerate(self.names)}
        for (p, gi, names, state), row, step in zip(taken, rows, steps):
            group = opt.param_groups[gi]
            fields = self._fields(p, group, row, _scalar(step))
            for n in names:
                record[n] = dict(fields)
                values[index[n]] = [fields[f] for f in report.FIELDS]
        self.last = record
        self._record_steps.append(self._t)
        self._values.append(values)
        if self._log is not None:
            self._write(record)

    def _sums(self, taken):
        """The per-tensor sums of ``_SUMS``, one host transfer (and one
        all_reduce over the sharded tensors)."""
        by_device = {}
        for i, (p, gi, names, state) in enumerate(taken):
            by_device.setdefault((_local(p).device, _is_dtensor(p)), []).append(i)
        rows = [None] * len(taken)
        blocks = []
        for (device, sharded), members in by_device.items():
            out = torch.zeros(len(members), len(_SUMS), dtype=torch.float64, device=device)
            small = []
            for j, i in enumerate(members):
                p, gi, names, state = taken[i]
                few = _local(p).numel() <= min(_SMALL, self._chunk)
                if self.kind == "adam" and id(p) not in self._before and few:
                    small.append(j)
                else:
                    self._tensor_sums(p, self.optimizer.param_groups[gi], state, out[j])
            # small tensors together, in batches of at most one chunk
            batch, size = [], 0
            for j in small + [None]:
                n = None if j is None else _local(taken[members[j]][0]).numel()
                if batch and (j is None or size + n > self._chunk):
                    self._small_sums([taken[members[k]] for k in batch], out, batch)
                    batch, size = [], 0
                if j is not None:
                    batch.append(j)
                    size += n
            if sharded:
                import torch.distributed as dist

                dist.all_reduce(out, group=taken[members[0]][0].device_mesh.get_group())
            blocks.append((members, out))
        # the one transfer to the host (one per device the parameters live on)
        for members, out in blocks:
            for i, row in zip(members, out.tolist()):
                rows[i] = row
        return rows

    def _small_sums(self, tensors, out, rows):
        """The sums of several small Adam tensors at once: their entries
        concatenated in float64 (at most one chunk of them), the products
        added per tensor by one index_add. A record of a model of many tiny
        tensors then costs a few dozen operations, not a few dozen per tensor."""
        device = out.device
        sizes = [_local(p).numel() for p, _, _, _ in tensors]
        consts = []
        for p, gi, _, state in tensors:
            group = self.optimizer.param_groups[gi]
            beta1, beta2 = (_scalar(b) for b in group["betas"])
            step = _scalar(state["step"])
            consts.append((1 - beta1**step, math.sqrt(1 - beta2**step), _scalar(group["eps"])))

        def cat(xs):
            return torch.cat([x.reshape(-1) for x in xs]).to(torch.float64)

        t = cat([_local(p) for p, _, _, _ in tensors])
        g = cat([_local(p.grad) for p, _, _, _ in tensors])
        m = cat([_local(state["exp_avg"]) for _, _, _, state in tensors])
        v = cat([_local(state["exp_avg_sq"]) for _, _, _, state in tensors])
        counts = torch.tensor(sizes, device=device)
        bc1, bc2, eps = torch.tensor(consts, dtype=torch.float64, device=device).T.repeat_interleave(
            counts, dim=1, output_size=t.numel())
        # torch's Adam: denom = sqrt(v) / sqrt(1 - beta2^t) + eps, u = m / (1 - beta1^t) / denom (float64 here)
        u = m / (v.sqrt() / bc2 + eps) / bc1
        segment = torch.arange(len(tensors), device=device).repeat_interleave(counts, output_size=t.numel())
        products = torch.stack([u * u, t * t, t * u, m * m, g * g, v])
        sums = torch.zeros(len(tensors), products.shape[0], dtype=torch.float64, device=device)
        sums.index_add_(0, segment, products.T)
        block = torch.full((len(tensors), len(_SUMS)), math.nan, dtype=torch.float64, device=device)
        block[:, [_COL[k] for k in ("uu", "tt", "tu", "mm", "gg", "v")]] = sums
        out[rows] = block

    def _tensor_sums(self, p, group, state, out):
        theta = _local(p)
        g = _local(p.grad)
        before = self._before.get(id(p))
        acc = torch.zeros(len(_SUMS), dtype=torch.float64, device=out.device)
        if self.kind == "adam":
            beta1, beta2 = (_scalar(b) for b in group["betas"])
            step = state["step"]
            if isinstance(step, torch.Tensor) and step.device.type != "cpu":
                bc1, bc2 = 1 - beta1**step, (1 - beta2**step).sqrt()  # on the device: no sync
            else:
                step = _scalar(step)
                bc1, bc2 = 1 - beta1**step, math.sqrt(1 - beta2**step)
            eps = _scalar(group["eps"])
            m, v = _local(state["exp_avg"]), _local(state["exp_avg_sq"])
        else:
            m = _local(state["momentum_buffer"])
            lr, wd = _scalar(group["lr"]), _scalar(group["weight_decay"])
            decay = 1.0 - lr * wd
            adjusted = lr * _muon_factor(group.get("adjust_lr_fn"), p.shape)
        for s in range(0, theta.numel(), self._chunk):
            sl = slice(s, s + self._chunk)
            t64 = theta[sl].double()
            g64 = g[sl].double()
            m64 = m[sl].double()
            if self.kind == "adam":
                # torch's Adam: denom = sqrt(v) / sqrt(1 - beta2^t) + eps, u = m / (1 - beta1^t) / denom,
                # in the state's dtype as torch computes it
                vc = v[sl]
                u64 = (m[sl] / (vc.sqrt() / bc2 + eps) / bc1).double()
                acc[_COL["v"]] += vc.sum(dtype=torch.float64)
            else:
                b64 = before[sl].double()
                u64 = (b64 * decay - t64) / adjusted
            acc[_COL["uu"]] += torch.dot(u64, u64)
            acc[_COL["tt"]] += torch.dot(t64, t64)
            acc[_COL["tu"]] += torch.dot(t64, u64)
            acc[_COL["mm"]] += torch.dot(m64, m64)
            acc[_COL["gg"]] += torch.dot(g64, g64)
            if before is not None:
                b64 = before[sl].double()
                # the step, exact in float64 for float32/bf16/fp16 weights
                d64 = t64 - b64
                acc[_COL["bb"]] += torch.dot(b64, b64)
                acc[_COL["bu"]] += torch.dot(b64, u64)
                acc[_COL["bt"]] += torch.dot(b64, t64)
                acc[_COL["dd"]] += torch.dot(d64, d64)
                acc[_COL["bd"]] += torch.dot(b64, d64)
        if before is None:
            acc[_COL["bb"]] = math.nan  # marks "reconstruct theta_{t-1}"
        out.copy_(acc)

    def _fields(self, p, group, row, step) -> dict:
        s = dict(zip(_SUMS, row))
        n = p.numel()
        lr, wd = _scalar(group["lr"]), _scalar(group["weight_decay"])
        nan = math.nan
        uu, tt, tu = s["uu"], s["tt"], s["tu"]
        if math.isnan(s["bb"]):
            # Adam/AdamW, theta_{t-1} = (theta_t + lr u_t) / beta3 (exact algebra)
            beta3 = 1.0 - lr * wd if group.get("decoupled_weight_decay", False) else 1.0
            scale = tt + 2 * lr * abs(tu) + lr * lr * uu
            bb = (tt + 2 * lr * tu + lr * lr * uu) / beta3**2
            # |theta_{t-1}|^2 is a difference of terms of size `scale`: below
            # its rounding (float64 sums; the step's rounding in the weights'
            # dtype, squared) theta_{t-1} is zero, as for a zero-initialised
            # bias at its first step, and cos and the angle are undefined
            eps = torch.finfo(p.dtype).eps
            if bb <= max(64 * 2.0**-52, (16 * eps) ** 2) * scale / beta3**2:
                bb = 0.0
            bu = (tu + lr * uu) / beta3
            bt = (tt + lr * tu) / beta3
            # |theta_{t-1} ^ theta_t| = (lr / beta3) |u_t ^ theta_t| (Lagrange's identity)
            wedge = lr / beta3 * math.sqrt(max(uu * tt - tu * tu, 0.0))
        else:
            bb, bu, bt = s["bb"], s["bu"], s["bt"]
            # |theta_{t-1} ^ (theta_{t-1} + d)| = |theta_{t-1} ^ d|: no cancellation at small angles
            wedge = math.sqrt(max(bb * s["dd"] - s["bd"] ** 2, 0.0))
        if self.kind == "adam":
            beta2 = _scalar(group["betas"][1])
            vhat = s["v"] / (1.0 - beta2**step)
            sqrt_vhat_rms = math.sqrt(vhat / n)
        else:
            sqrt_vhat_rms = nan
        return {
            "update_rms": math.sqrt(uu / n),
            "weight_rms": math.sqrt(tt / n),
            "momentum_ratio": math.sqrt(s["mm"] / s["gg"]) if s["gg"] > 0 else nan,
            "cos_theta_u": bu / math.sqrt(bb * uu) if bb > 0 and uu > 0 else nan,
            "angle": math.atan2(wedge, bt) if bb > 0 and tt > 0 else nan,
            "grad_norm": math.sqrt(s["gg"]),
            "sqrt_vhat_rms": sqrt_vhat_rms,
            "step": step,
            "lr": lr,
            "wd": wd,
        }

    # ------------------------------------------------------------ outputs

    def scalars(self, prefix: str = "optstats") -> dict:
        """The last record as ``{"<prefix>/<name>/<field>": float}`` for
        ``SummaryWriter.add_scalar`` or ``wandb.log`` (nan where undefined)."""
        if not isinstance(prefix, str):
            raise ValueError(f"prefix must be a string, got {prefix!r}")
        head = f"{prefix}/" if prefix else ""
        return {f"{head}{name}/{field}": value
                for name, fields in self.last.items() for field, value in fields.items()}

    def _make_header(self) -> dict:
        groups = []
        for group in self.optimizer.param_groups:
            if self.kind == "adam":
                groups.append({"kind": "adam", "betas": [_scalar(b) for b in group["betas"]],
                               "eps": _scalar(group["eps"]),
                               "decoupled": bool(group.get("decoupled_weight_decay", False))})
            else:
                groups.append({"kind": "muon", "momentum": _scalar(group["momentum"]),
                               "nesterov": bool(group["nesterov"]),
                               "adjust_lr_fn": group.get("adjust_lr_fn"),
                               "scale": MUON_ADJUST_LR[group.get("adjust_lr_fn")]})
        with torch.no_grad():
            initial = self._initial_rms()
        tensors = []
        for (p, gi, names), rms in zip(self._params, initial):
            for n in names:
                tensors.append({"name": n, "group": gi, "shape": list(p.shape), "numel": p.numel(),
                                "initial_weight_rms": rms})
        return {"optstats": report.LOG_FORMAT, "optimizer": type(self.optimizer).__name__, "every": self.every,
                "start_step": self.start_step, "groups": groups, "tensors": tensors}

    def _initial_rms(self):
        """RMS of every watched tensor now (the theta_0 of the weight-RMS sum)."""
        sums = []
        for p, _, _ in self._params:
            x = _local(p)
            acc = torch.zeros((), dtype=torch.float64, device=x.device)
            for s in range(0, x.numel(), self._chunk):
                c = x[s:s + self._chunk].double()
                acc += torch.dot(c, c)
            if _is_dtensor(p):
                import torch.distributed as dist

                dist.all_reduce(acc, group=p.device_mesh.get_group())
            sums.append(acc)
        return [math.sqrt(v / p.numel()) for v, (p, _, _) in zip(torch.stack(sums).tolist(), self._params)]

    def _schedule_since_logged(self, source):
        return [list(arr[self._logged[gi]:]) for gi, arr in enumerate(source)]

    def _write(self, record):
        line = {"step": self._t, "lr": self._schedule_since_logged(self._lr),
                "wd": self._schedule_since_logged(self._wd),
                "tensors": {n: {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                for k, v in f.items()} for n, f in record.items()}}
        self._logged = [len(a) for a in self._lr]
        self._append(line)

    def _append(self, line):
        with open(self._log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, allow_nan=False) + "\n")

    def summary(self, start=None, *, muon_law: bool = True):
        """Measured against predicted, per tensor (see :func:`optstats.report.summarize`;
        ``muon_law=False`` leaves out Muon's W, cos and angle)."""
        if not self._values:
            raise ValueError("no record yet: the watch records on steps t with t % every == 0")
        return report.summarize(self._header, np.asarray(self._record_steps), np.stack(self._values),
                                [np.asarray(a) for a in self._lr], [np.asarray(a) for a in self._wd],
                                start=start, muon_law=muon_law)


def _muon_factor(adjust_lr_fn, shape) -> float:
    """torch's Muon scales its lr by this factor for a weight of ``shape``
    (``torch.optim._muon._adjust_lr``), one of theory.muon_scale_conventions."""
    from .. import theory

    return theory.muon_scale_conventions(tuple(shape[:2]))[MUON_ADJUST_LR[adjust_lr_fn]]
