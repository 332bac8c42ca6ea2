"""A watch's records against the theory: the per-tensor report.

:func:`summarize` turns the records of :class:`optstats.probe.Watch` (in
memory, or read back from its JSON-lines log by :func:`read_log`) into one
row per tensor: the window means of the measured statistics with batch-means
error bars, and next to each the theory's value for that tensor's optimizer
and hyperparameters, taken from ``optstats.theory`` (the row names the
function), with their relative difference. No torch here: ``optstats
report`` reads a log on a machine without it.

What is predicted, per record step of the window and then averaged:

- Adam/AdamW update RMS: ``theory.adam_update_rms(beta1, beta2,
  method="exact", eps_over_sigma=eps / sqrt_vhat_rms)``, Adam's exact
  stationary RMS under pure noise, with eps's mean-field factor (eps/sigma
  read from torch's own vhat; the factor is 1 when eps does not matter);
- weight RMS: ``theory.weight_rms_schedule(lr, wd, theta0_rms=...,
  method="sum")`` over every step's lr and wd since the watch was attached,
  from the tensor's RMS then (the schedules chapter's sum, V = 1);
- cos(theta, u) and the angle at equilibrium: ``theory.cos_theta_u`` and
  ``theory.angular_update`` with the mean-field U (``adam_update_rms``) and
  Wen et al.'s W (``adamw_weight_rms(method="exact-sums")``), as ``optstats
  weight-rms`` does;
- Muon (``torch.optim.Muon``): ``theory.muon_update_rms(shape)`` (the exact
  msign's RMS; torch's Newton-Schulz stops short of it) and, unless
  ``muon_law=False``, the matrix law in torch's convention at each record
  step's lr and wd, with the group's momentum, nesterov and adjust_lr_fn (the
  log's header carries them): W = ``theory.torch_muon_weight_rms`` (decay by
  lr wd, step by lr_adj = ``theory.torch_muon_lr(lr, shape, adjust_lr_fn)``),
  cos(theta, u) = ``theory.cos_theta_u(lr_adj, lr wd / lr_adj, U, W)`` and the
  angle ``theory.muon_angular_update(lr_adj, lr wd / lr_adj, momentum, shape,
  nesterov)``, all from the shipped table (microseconds per shape). These are
  stationary values at each step's rates, averaged over the window (unlike
  Adam's W they do not follow the schedule since theta_0).

The memories elapsed are sum_t lr_t wd_t; below ``EQUILIBRIUM_MEMORIES`` a
tensor is marked not yet in equilibrium. The SNR read back from the update
RMS (``theory.snr_from_update_rms(method="exact")``) is what the pure-noise
model would need to give the measured RMS, not a measurement.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import runs, stats, tables

#: the statistics of a record (a stored run's fields and the RMS of sqrt(vhat),
#: which the epsilon-aware update RMS needs), then the bookkeeping fields
STATISTICS = runs.FIELDS + ("sqrt_vhat_rms",)
FIELDS = STATISTICS + ("step", "lr", "wd")
#: the first line of a log says which format follows
LOG_FORMAT = "watch-log-1"
#: memories sum(lr wd) after which the weights have forgotten theta_0 to
#: e^-6 in mean square (theta_0^2 decays as exp(-2 sum lr wd)): equilibrium
EQUILIBRIUM_MEMORIES = 3.0
#: batches of the window for the error bars (batch means: consecutive
#: records are correlated, batches of many records nearly are not)
BATCHES = 10
#: the compared statistics, in the table's order
COMPARED = ("update_rms", "weight_rms", "cos_theta_u", "angle")


@dataclass
class Summary:
    """The report: ``rows`` (one dict per tensor name) and the window."""

    rows: list
    window: tuple
    notes: list = field(default_factory=list)

    def to_markdown(self) -> str:
        """The table (measured ± 95% half-width, predicted, relative difference), then the notes."""
        headers = ["tensor", "memories", "update RMS", "weight RMS", "cos(θ, u)", "angle", "SNR read-back"]
        body = []
        for r in self.rows:
            cells = [r["name"], _fmt(r["memories"], ".2f") + ("" if r["equilibrium"] in (True, None) else " (no eq.)")]
            for q in COMPARED:
                cell = _fmt_estimate(r[q], r[f"{q}_halfwidth95"])
                if r[f"{q}_predicted"] is not None:
                    diff = (_fmt(r[f"{q}_difference"], "+.3f") if q == "cos_theta_u"
                            else _fmt(r[f"{q}_relative_difference"], "+.1%"))
                    cell += f" vs {_fmt(r[f'{q}_predicted'], '.4g')} ({diff})"
                cells.append(cell)
            cells.append(_fmt(r["snr_readback"], ".3g"))
            body.append(cells)
        lines = [tables.markdown(headers, body), "",
                 f"Window: records at steps {self.window[0]}..{self.window[1]}; measured mean ± the half-width of "
                 f"its 95% interval (batch means) vs the theory's value (relative difference; for cos the difference)."]
        lines += [f"- {note}" for note in self.notes]
        for r in self.rows:
            lines += [f"- {r['name']}: {note}" for note in r["notes"]]
        return "\n".join(lines)


def _fmt(x, spec):
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _fmt_estimate(value, halfwidth):
    if value is None or not math.isfinite(value):
        return "n/a"
    return format(value, ".4g") + ("" if halfwidth is None or not math.isfinite(halfwidth) else f" ± {halfwidth:.2g}")


def _window_mean(x):
    """Mean over the window's records (nan entries left out), its
    batch-means stderr and the half-width of its 95% interval (None with
    fewer than 4 records)."""
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None, None, None
    mean = float(x.mean())
    k = min(BATCHES, x.size // 2)
    if k < 2:
        return mean, None, None
    used = x[x.size - (x.size // k) * k:]  # the latest records, in k equal batches
    est = stats.from_replicas(used.reshape(k, -1).mean(axis=1), axis=0)
    return mean, float(est.stderr), float(est.halfwidth95)


def _adam_predictions(lr, wd, b1, b2, eps_over_sigma):
    from . import theory

    update = float(theory.adam_update_rms(b1, b2, method="exact", eps_over_sigma=eps_over_sigma))
    if lr <= 0 or wd <= 0:
        return update, None, None
    mean_field = float(theory.adam_update_rms(b1))
    weight = float(theory.adamw_weight_rms(lr, wd, beta1=b1, method="exact-sums"))
    cos = float(theory.cos_theta_u(lr, wd, mean_field, weight))
    return update, cos, float(theory.angular_update(lr, wd, mean_field, weight, cos))


#: distinct (lr, wd) pairs per call of the Muon law: its lag sums are arrays
#: of (lags, pairs), about 40 / (1 - beta1) lags (800 at beta1 = 0.95: 6.5 MB)
_MUON_BATCH = 1024


def _muon_predictions(lr, wd, group, shape):
    """(W, cos, angle) of torch.optim.Muon at equilibrium for each step's
    (lr, wd), three arrays (nan where lr or wd is 0: no equilibrium)."""
    from . import theory

    lr, wd = np.asarray(lr, float), np.asarray(wd, float)
    out = np.full((3, lr.size), np.nan)
    ok = (lr > 0) & (wd > 0)
    if not ok.any():
        return out
    # each distinct pair once (a constant schedule is one call)
    pairs, back = np.unique(np.stack([lr[ok], wd[ok]], axis=1), axis=0, return_inverse=True)
    fn, momentum, nesterov = group["adjust_lr_fn"], group["momentum"], group["nesterov"]
    update = theory.muon_update_rms(shape)
    values = np.empty((3, len(pairs)))
    for s in range(0, len(pairs), _MUON_BATCH):
        lr_b, wd_b = pairs[s:s + _MUON_BATCH, 0], pairs[s:s + _MUON_BATCH, 1]
        # torch's convention in the book's form theta <- theta - eta (u + lambda theta)
        eta = theory.torch_muon_lr(lr_b, shape, fn)
        lam = lr_b * wd_b / eta
        weight = theory.torch_muon_weight_rms(lr_b, wd_b, momentum, shape, nesterov=nesterov, adjust_lr_fn=fn)
        values[0, s:s + _MUON_BATCH] = weight
        values[1, s:s + _MUON_BATCH] = theory.cos_theta_u(eta, lam, update, weight)
        values[2, s:s + _MUON_BATCH] = theory.muon_angular_update(eta, lam, momentum, shape, nesterov=nesterov)
    out[:, ok] = values[:, back.ravel()]
    return out


def summarize(header, record_steps, values, lr, wd, *, start=None, muon_law=True) -> Summary:
    """The report of a watch's records.

    ``header`` is the watch's description (the log's first line),
    ``record_steps`` the (R,) optimizer steps of the records, ``values`` an
    (R, names, len(FIELDS)) array of them, ``lr`` and ``wd`` one array per
    param group of every step's rates since the watch was attached. The
    window is the records at steps >= ``start`` (default: the last half of
    the records). ``muon_law=False`` leaves out Muon's W, cos and angle (the
    update RMS stays).
    """
    from . import theory

    record_steps = np.asarray(record_steps)
    if record_steps.size == 0:
        raise ValueError("no record to summarize")
    if start is None:
        # the last half of the records: from the middle one on
        first = record_steps[record_steps.size // 2]
    else:
        if isinstance(start, bool) or not float(start).is_integer():
            raise ValueError(f"start must be a whole step number, got {start!r}")
        if not record_steps[0] <= start <= record_steps[-1]:
            raise ValueError(f"start must lie in [{record_steps[0]}, {record_steps[-1]}] (the recorded steps), "
                             f"got {start!r}")
        first = start
    window = record_steps >= first
    t0 = int(header["start_step"])
    last = int(record_steps[-1])
    # step t of the run is entry t - t0 - 1 of each schedule array
    col = {f: i for i, f in enumerate(FIELDS)}
    idx = np.flatnonzero(window)
    offsets = record_steps[idx] - t0 - 1
    rows = []
    cache = {}
    for j, tensor in enumerate(header["tensors"]):
        gi = tensor["group"]
        group = header["groups"][gi]
        name, shape = tensor["name"], tuple(tensor["shape"])
        lr_g, wd_g = np.asarray(lr[gi], float)[: last - t0], np.asarray(wd[gi], float)[: last - t0]
        x = values[idx, j, :]
        row = {"name": name, "optimizer": group["kind"], "shape": list(shape), "window": (int(first), last),
               "records": int(np.isfinite(x[:, col["update_rms"]]).sum()), "notes": []}
        for q in STATISTICS:
            row[q], row[f"{q}_stderr"], row[f"{q}_halfwidth95"] = _window_mean(x[:, col[q]])
        for q in COMPARED:
            row[f"{q}_predicted"] = None
            row[f"{q}_theory"] = None
        decoupled = group["kind"] == "muon" or group.get("decoupled", False)
        decay = lr_g * wd_g if decoupled else np.zeros_like(lr_g)
        decayed = bool(np.any(decay > 0))
        row["memories"] = float(decay.sum()) if decayed else None
        row["equilibrium"] = None if not decayed else row["memories"] >= EQUILIBRIUM_MEMORIES
        if decayed and not row["equilibrium"]:
            row["notes"].append(f"not yet in equilibrium: {row['memories']:.2f} memories sum(lr wd) elapsed, "
                                f"fewer than {EQUILIBRIUM_MEMORIES:g}")
        if not decoupled and np.any(wd_g > 0):
            row["notes"].append("coupled L2 decay (Adam with decoupled_weight_decay=False): the book's "
                                "equilibrium is for decoupled decay; no prediction of W, cos or angle")
        elif not decayed:
            row["notes"].append("undecayed (wd = 0): no equilibrium, so no prediction of W, cos or angle")
        if row["records"] == 0:
            row["notes"].append("no record in the window")
            rows.append(row)
            continue
        if group["kind"] == "adam":
            b1, b2 = group["betas"]
            eps_over = group["eps"] / row["sqrt_vhat_rms"] if row["sqrt_vhat_rms"] else 0.0
            preds = []
            for k in offsets:
                key = ("adam", b1, b2, round(eps_over, 12), lr_g[k], wd_g[k] if decayed and decoupled else 0.0)
                if key not in cache:
                    cache[key] = _adam_predictions(lr_g[k], key[-1], b1, b2, eps_over)
                preds.append(cache[key])
            preds = np.array([[np.nan if v is None else v for v in p] for p in preds], float)
            row["update_rms_predicted"] = float(np.mean(preds[:, 0]))
            row["update_rms_theory"] = "theory.adam_update_rms(beta1, beta2, method='exact', eps_over_sigma)"
            if eps_over > 1e-3:
                row["notes"].append(f"eps/sigma = {eps_over:.3g} (sigma = sqrt(mean vhat)): the update-RMS "
                                    f"prediction carries eps's mean-field factor, not exact (epsilon chapter)")
            if decayed and decoupled:
                row["cos_theta_u_predicted"] = float(np.nanmean(preds[:, 1]))
                row["angle_predicted"] = float(np.nanmean(preds[:, 2]))
                row["cos_theta_u_theory"] = ("theory.cos_theta_u(lr, wd, adam_update_rms(beta1), "
                                             "adamw_weight_rms(method='exact-sums'))")
                row["angle_theory"] = "theory.angular_update(lr, wd, U, W, cos) with the same U, W"
            try:
                if row["update_rms"] is None or row["update_rms"] >= 1:
                    raise ValueError("update RMS >= 1")
                row["snr_readback"] = float(theory.snr_from_update_rms(row["update_rms"], b1, b2, method="exact"))
            except ValueError:
                row["snr_readback"] = None
                row["notes"].append("SNR read-back: the update RMS is below Adam's exact pure-noise value, "
                                    "which no SNR gives")
        else:
            row["snr_readback"] = None
            row["update_rms_predicted"] = float(theory.muon_update_rms(shape))
            row["update_rms_theory"] = "theory.muon_update_rms(shape) (exact msign)"
            row["notes"].append("Muon's update RMS and weight RMS are predicted for the exact msign; torch's "
                                "Newton-Schulz iteration stops short of it, so both measure lower, by a ratio "
                                "that depends on the shape (beyond-adamw chapter)")
            if decayed and not muon_law:
                row["notes"].append("W, cos and angle left out (muon_law=False, optstats report --no-muon-law)")
            elif decayed:
                key = ("muon", gi, shape)  # the same law for every tensor of this shape in this group
                if key not in cache:
                    cache[key] = _muon_predictions(lr_g[offsets], wd_g[offsets], group, shape)
                preds = cache[key]
                with warnings.catch_warnings():  # a window without any decayed step: nan, then None
                    warnings.simplefilter("ignore", RuntimeWarning)
                    means = np.nanmean(preds, axis=1)
                for q, value in zip(("weight_rms", "cos_theta_u", "angle"), means):
                    row[f"{q}_predicted"] = float(value) if math.isfinite(value) else None
                momentum = "Nesterov" if group["nesterov"] else "EMA"
                row["weight_rms_theory"] = (f"theory.torch_muon_weight_rms(lr, wd, {group['momentum']:g}, shape, "
                                            f"nesterov={group['nesterov']}, adjust_lr_fn={group['adjust_lr_fn']!r}) "
                                            f"({momentum} momentum, exact msign), stationary at each step's rates")
                row["cos_theta_u_theory"] = ("theory.cos_theta_u(lr_adj, lr wd / lr_adj, muon_update_rms(shape), W), "
                                             "lr_adj = theory.torch_muon_lr(lr, shape, adjust_lr_fn)")
                row["angle_theory"] = ("theory.muon_angular_update(lr_adj, lr wd / lr_adj, momentum, shape, "
                                       "nesterov)")
        if group["kind"] == "adam" and decayed and decoupled:
            rms = theory.weight_rms_schedule(lr_g, wd_g, theta0_rms=tensor["initial_weight_rms"], method="sum")
            row["weight_rms_predicted"] = float(rms[offsets].mean())
            row["weight_rms_theory"] = ("theory.weight_rms_schedule(lr, wd, theta0_rms, method='sum') over the "
                                        "recorded schedule")
        for q in COMPARED:
            p = row[f"{q}_predicted"]
            known = p is not None and row[q] is not None and math.isfinite(p)
            if q == "cos_theta_u":
                # a cosine near zero has no useful relative difference: measured - predicted
                row[f"{q}_difference"] = row[q] - p if known else None
            else:
                row[f"{q}_relative_difference"] = row[q] / p - 1.0 if known and p != 0 else None
        rows.append(row)
    notes = ["predictions: the posts' pure-noise model (gradients iid in time, independent of the weights) at "
             "each tensor's hyperparameters; cos and angle are equilibrium values",
             "SNR read-back: the SNR the pure-noise model needs to give the measured update RMS (a read-back of "
             "that model, not a measurement; correlation in time lowers it)"]
    return Summary(rows, (int(first), last), notes)


def summarize_run(run) -> Summary:
    """:func:`summarize` of a stored training run (:class:`optstats.runs.Run`,
    recorded by the watch at every step): the report a reader gets from
    ``Watch(log=...)`` and ``optstats report`` on their own model, over the
    run's window (``config.window``: its records up to the window's end, the
    window's records averaged, so the means are ``Run.equilibrium()``'s). The run
    keeps the watch's fields but not sqrt(vhat), so eps's factor is 1 (eps =
    1e-8 against gradients of order 1e-4 and more). Decayed tensors form
    one AdamW group (decoupled decay ``config.wd``), the rest another with
    no decay."""
    config = run.config
    beta1, beta2 = config.betas
    group = {"kind": "adam", "betas": [beta1, beta2], "eps": config.eps, "decoupled": True}
    header = {
        "start_step": 0,
        "groups": [group, dict(group)],
        "tensors": [{"name": n, "group": 0 if d else 1, "shape": [size], "initial_weight_rms": float(w0)}
                    for n, d, size, w0 in zip(run.names, run.decayed, run.sizes, run.init_weight_rms)],
    }
    start, stop = config.window
    steps = np.arange(1, stop + 1)
    shape = (stop, len(run.names))
    lr_t = np.asarray(run.lr, float)[:stop]
    extra = {"sqrt_vhat_rms": np.full(shape, np.nan),
             "step": np.broadcast_to(steps[:, None], shape),
             "lr": np.broadcast_to(lr_t[:, None], shape),
             "wd": np.broadcast_to(np.where(run.decayed, config.wd, 0.0)[None, :], shape)}
    values = np.stack([run.fields[f][:stop] if f in run.fields else extra[f] for f in FIELDS], axis=-1)
    lr = [lr_t, lr_t]
    wd = [np.full(stop, float(config.wd)), np.zeros(stop)]
    return summarize(header, steps, values, lr, wd, start=start + 1, muon_law=False)


# ---------------------------------------------------------------- the log


class LogError(ValueError):
    """A log that is not a watch's log."""


#: what the Muon law needs of a Muon group in the log's header (the Watch writes them)
MUON_GROUP_KEYS = ("momentum", "nesterov", "adjust_lr_fn")


def _check_muon_group(group, where):
    from .theory.muon import TORCH_ADJUST_LR_FNS

    missing = [k for k in MUON_GROUP_KEYS if k not in group]
    if missing:
        raise LogError(f"{where}: a Muon group needs {', '.join(MUON_GROUP_KEYS)} (torch.optim.Muon's settings, "
                       f"which set its prediction), this one lacks {', '.join(missing)}: record again with "
                       f"optstats.probe.Watch")
    if isinstance(group["momentum"], bool) or not isinstance(group["momentum"], (int, float)) \
            or not 0 <= group["momentum"] < 1:
        raise LogError(f"{where}: momentum must be a number in [0, 1), got {group['momentum']!r}")
    if not isinstance(group["nesterov"], bool):
        raise LogError(f"{where}: nesterov must be true or false, got {group['nesterov']!r}")
    if group["adjust_lr_fn"] not in TORCH_ADJUST_LR_FNS:
        raise LogError(f"{where}: adjust_lr_fn must be one of {TORCH_ADJUST_LR_FNS} (torch.optim.Muon's), "
                       f"got {group['adjust_lr_fn']!r}")


def read_log(path):
    """(header, record_steps, values, lr, wd) from a ``Watch(log=path)`` file,
    for :func:`summarize`. Raises :class:`LogError` naming the line."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as err:
        raise LogError(f"cannot read {path}: {err.strerror}") from None
    with handle:
        lines = [line for line in handle if line.strip()]
    if not lines:
        raise LogError(f"{path} is empty")

    def parse(k):
        try:
            return json.loads(lines[k])
        except json.JSONDecodeError as err:
            raise LogError(f"{path} line {k + 1}: not JSON ({err.msg})") from None

    header = parse(0)
    if not isinstance(header, dict) or header.get("optstats") != LOG_FORMAT:
        raise LogError(f"{path} line 1: not a watch log (its first line must have \"optstats\": \"{LOG_FORMAT}\")")
    try:
        names = [t["name"] for t in header["tensors"]]
        groups = len(header["groups"])
        for t in header["tensors"]:
            if not 0 <= t["group"] < groups:
                raise LogError(f"{path} line 1: tensor {t['name']!r} has group {t['group']}")
        for gi, g in enumerate(header["groups"]):
            if g["kind"] not in ("adam", "muon"):
                raise LogError(f"{path} line 1: unknown optimizer kind {g['kind']!r}")
            if g["kind"] == "muon":
                _check_muon_group(g, f"{path} line 1: param group {gi}")
        int(header["start_step"])
    except (KeyError, TypeError) as err:
        raise LogError(f"{path} line 1: header lacks {err}") from None
    index = {n: i for i, n in enumerate(names)}
    steps, values = [], []
    lr, wd = [[] for _ in range(groups)], [[] for _ in range(groups)]
    for k in range(1, len(lines)):
        rec = parse(k)
        where = f"{path} line {k + 1}"
        if not isinstance(rec, dict) or set(rec) != {"step", "lr", "wd", "tensors"}:
            raise LogError(f"{where}: a record has the keys step, lr, wd, tensors, got "
                           f"{sorted(rec) if isinstance(rec, dict) else type(rec).__name__}")
        row = np.full((len(names), len(FIELDS)), np.nan)
        for name, fields in rec["tensors"].items():
            if name not in index:
                raise LogError(f"{where}: unknown tensor {name!r} (not in the header)")
            unknown = set(fields) - set(FIELDS)
            if unknown:
                raise LogError(f"{where}: unknown field {sorted(unknown)[0]!r} of {name!r} "
                               f"(known: {', '.join(FIELDS)})")
            for f, v in fields.items():
                if v is not None and not isinstance(v, (int, float)):
                    raise LogError(f"{where}: field {f!r} of {name!r} must be a number or null, got {v!r}")
                row[index[name], FIELDS.index(f)] = np.nan if v is None else v
        for source, target in (("lr", lr), ("wd", wd)):
            if not isinstance(rec[source], list) or len(rec[source]) != groups:
                raise LogError(f"{where}: {source} must hold one list per param group ({groups})")
            for g, vals in enumerate(rec[source]):
                target[g].extend(vals)
        steps.append(rec["step"])
        values.append(row)
    if not steps:
        raise LogError(f"{path} holds no record (only its header)")
    n_steps = steps[-1] - int(header["start_step"])
    if any(len(x) != n_steps for x in lr + wd):
        raise LogError(f"{path}: the schedule holds {len(lr[0])} steps, the records end at step {steps[-1]}")
    return header, np.array(steps), np.stack(values), [np.array(x) for x in lr], [np.array(x) for x in wd]
