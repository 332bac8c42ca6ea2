"""Training runs as data: what a real network measured, stored and reloaded.

A derivation or a seeded numpy simulation gives the same digits on every
x86-64 machine once ``tests/numerics.env`` pins the kernels. A trained network
does not: a difference in the last bit of one float kernel (MKL, oneDNN and
ATen pick their code paths by the CPU) grows through training into whole
digits. Its digits are an experiment, not a regression record. So the book's
real-network chapter does not train: ``make runs`` trains its configurations
once, from pinned code and seeds (:func:`optstats.network.make_runs`), and
writes what every run measured to ``book/data/<experiment>/`` with
:func:`save`; the chapter reads them back with :func:`load`, numpy only, so
that nbval compares its analysis digit for digit on any machine; and
``tests/test_stored_runs.py`` re-trains with today's code on today's machine
and checks the result against the stored runs within their seed-to-seed
spread, which is what a different CPU (or a changed training code) may move.

This module holds the run's description (:class:`Config`) and its record
(:class:`Run`) and never imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _validate, schedules

#: the per-step fields of a record, as the probe reports them
FIELDS = ("update_rms", "weight_rms", "momentum_ratio", "cos_theta_u", "angle", "grad_norm")
#: a stored run keeps its window's lag products as means over blocks of this
#: many steps (the window mean is their mean), not step by step: 30x smaller,
#: and the blocks still give batch means for an error bar within one run
LAG_BLOCK = 25
#: the networks a run can train (optstats.network.TASKS): the digits
#: classifier and the character-level language model
TASKS = ("digits", "chars")
#: the file of an experiment's directory that lists its runs
MANIFEST = "runs.json"


@dataclass(frozen=True)
class Config:
    """One training run of :mod:`optstats.network`. Steps are counted from 1;
    the learning rate follows ``schedules.wsd`` (linear warm-up to ``lr`` at
    step ``warmup``, constant to ``decay_start``, linear to 0 at ``steps``).
    Lag statistics of the normalised gradient are collected on steps
    ``window[0] < t <= window[1]`` for lags 1..``lags``; the weights are kept
    after the steps in ``snapshots`` (for the SNR measured on them).
    ``task`` names the network: ``"digits"`` (one block over the 8 image
    rows: depth 1, context 8) or ``"chars"`` (the language model, ``depth``
    blocks over windows of ``context`` characters)."""

    steps: int = 2600
    warmup: int = 100
    decay_start: int = 2000
    lr: float = 3e-3
    wd: float = 1.0
    betas: tuple = (0.9, 0.95)
    eps: float = 1e-8
    batch_size: int = 32
    width: int = 32
    heads: int = 2
    task: str = "digits"
    depth: int = 1
    context: int = 8
    seed: int = 0
    window: tuple = (1400, 2000)
    lags: int = 32
    snapshots: tuple = ()

    def __post_init__(self):
        _validate.count("steps", self.steps)
        _validate.count("batch_size", self.batch_size)
        _validate.count("lags", self.lags)
        _validate.count("width", self.width)
        _validate.count("heads", self.heads)
        _validate.count("depth", self.depth)
        _validate.count("context", self.context)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.width % self.heads:
            raise ValueError(f"width must be a multiple of heads={self.heads}, got {self.width}")
        if len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        if len(set(self.snapshots)) != len(self.snapshots):
            raise ValueError(f"snapshots must be distinct steps, got {self.snapshots!r}")
        _validate.scalar(_validate.positive, "lr", self.lr)
        _validate.scalar(_validate.nonnegative, "wd", self.wd)
        _validate.scalar(_validate.nonnegative, "eps", self.eps)
        for i, beta in enumerate(self.betas):
            _validate.scalar(_validate.beta, f"betas[{i}]", beta)
        if self.lr * self.wd >= 1:
            raise ValueError(f"lr * wd must be < 1 (the decay per step), got {self.lr * self.wd!r}")
        start, stop = self.window
        if not 0 <= start < stop <= self.steps:
            raise ValueError(f"window must satisfy 0 <= start < stop <= steps={self.steps}, got {self.window}")
        if start < self.warmup + self.lags:
            raise ValueError(
                f"window must start at least lags={self.lags} steps after the warm-up (step {self.warmup}), "
                f"got {self.window}"
            )
        for s in self.snapshots:
            if not 1 <= s <= self.steps:
                raise ValueError(f"snapshots must lie in [1, steps={self.steps}], got {s}")
        schedules.wsd(self.steps, self.lr, self.warmup, self.decay_start)  # checks the schedule

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Config":
        """The config of :meth:`to_json`; every field must be there (a default
        standing in for a missing one would describe another run)."""
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(data) != sorted(names):
            raise ValueError(f"a stored config must have exactly the fields {names}, got {sorted(data)}")
        tuples = {k: tuple(data[k]) for k in ("betas", "window", "snapshots")}
        return cls(**{**data, **tuples})


@dataclass
class Run:
    """What one training run measured.

    ``fields[f]`` is a (steps, tensors) array of the probe's field ``f`` at
    every step. ``lag_products`` has the window's lag products, last axis
    h_t . h_t, h_t . h_{t-k} for k = 1..lags, sum_k beta1^k h_t . h_{t-k} and
    sum_k beta3^k h_t . h_{t-k} over all lags since the warm-up, then
    u_t . u_t and sum_k beta3^k u_t . u_{t-k}, per tensor, where
    h = g / (sqrt(vhat) + eps) is the gradient as Adam normalises it, u is
    Adam's update and beta3 = 1 - lr wd at the peak learning rate: step by
    step in a fresh run, as means over blocks of :data:`LAG_BLOCK` steps in a
    stored one (the mean over axis 0 is the window mean either way).

    Measured on the weights rather than step by step: ``init_weight_rms``
    (each tensor's RMS at initialisation), ``snr`` (step -> the exact
    minibatch SNR of each tensor at the weights after that step, for the
    steps in ``config.snapshots``), ``cos_theta_grad`` (cos between each
    tensor and its gradient on the first 256 training images at the final
    weights) and ``test_accuracy``. A fresh run also carries its weights in
    ``snapshots``; a stored one does not.
    """

    config: Config
    names: tuple
    sizes: tuple
    decayed: np.ndarray
    lr: np.ndarray
    loss: np.ndarray
    fields: dict
    lag_products: np.ndarray
    init_weight_rms: np.ndarray
    snapshots: dict = field(default_factory=dict)
    snr: dict = field(default_factory=dict)
    cos_theta_grad: np.ndarray | None = None
    test_accuracy: float = math.nan

    def equilibrium(self) -> dict:
        """Means over the window's steps (start < t <= stop), one entry per tensor:
        the probe's fields, and from the lag products the power C(0) = E[h^2]
        per coordinate, the lag correlations rho(k) = C(k)/C(0) (k = 1..lags,
        shape (tensors, lags)) and the lag sums A(beta1), A(beta3) of
        ``theory.correlated``; and the same power and beta3 lag sum of the
        update u itself (``update_power``, ``update_lag_sum_beta3``)."""
        start, stop = self.config.window
        window = {f: self.fields[f][start:stop] for f in FIELDS}
        bad = [f for f, v in window.items() if not np.all(np.isfinite(v))]
        if bad:  # a mean that skipped undefined steps would describe another window
            raise ValueError(f"fields {bad} are not finite on every step of the window {self.config.window}")
        out = {f: v.mean(axis=0) for f, v in window.items()}
        products = self.lag_products.mean(axis=0)
        c0 = products[:, 0]
        out["power"] = c0 / np.array(self.sizes)
        lags = self.config.lags
        out["lag_correlation"] = products[:, 1:lags + 1] / c0[:, None]
        out["lag_sum_beta1"] = products[:, lags + 1] / c0
        out["lag_sum_beta3"] = products[:, lags + 2] / c0
        out["update_power"] = products[:, lags + 3] / np.array(self.sizes)
        out["update_lag_sum_beta3"] = products[:, lags + 4] / products[:, lags + 3]
        return out


def _blocks(lag_products: np.ndarray) -> np.ndarray:
    steps = lag_products.shape[0]
    if steps % LAG_BLOCK:
        raise ValueError(f"a stored run's window must last a multiple of {LAG_BLOCK} steps, got {steps}")
    return lag_products.reshape(steps // LAG_BLOCK, LAG_BLOCK, *lag_products.shape[1:]).mean(axis=1)


def save(directory, experiment: dict, provenance: dict | None = None) -> None:
    """Write the runs of ``experiment`` ({label: [Run, ...]}, one list of seeds
    per label) to ``directory``: one compressed ``.npz`` per run and a
    manifest (:data:`MANIFEST`) with each run's config and file, and
    ``provenance`` (versions, the kernels used). Per-step fields are stored in
    float32 (seven digits, far below any seed-to-seed spread); the lag blocks,
    the SNR and the cosines in float64."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"provenance": provenance or {}, "runs": {}}
    for label, runs in experiment.items():
        entries = []
        for run in runs:
            name = f"{label}-seed{run.config.seed}.npz"
            snr_steps = sorted(run.snr)
            arrays = {
                "decayed": np.asarray(run.decayed),
                "lr": np.asarray(run.lr),
                "loss": np.asarray(run.loss),
                "lag_blocks": _blocks(np.asarray(run.lag_products)),
                "init_weight_rms": np.asarray(run.init_weight_rms, dtype=np.float64),
                "snr_steps": np.asarray(snr_steps, dtype=np.int64),
                "snr": np.array([[run.snr[s][n] for n in run.names] for s in snr_steps]).reshape(
                    len(snr_steps), len(run.names)),
                "cos_theta_grad": np.asarray(
                    np.full(len(run.names), np.nan) if run.cos_theta_grad is None else run.cos_theta_grad),
                "test_accuracy": np.float64(run.test_accuracy),
            }
            arrays.update({f"field_{f}": np.asarray(run.fields[f], dtype=np.float32) for f in FIELDS})
            np.savez_compressed(directory / name, **arrays)
            entries.append({"file": name, "config": run.config.to_json(),
                            "names": list(run.names), "sizes": list(run.sizes)})
        manifest["runs"][label] = entries
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def manifest(directory) -> dict:
    """The manifest of a stored experiment: its provenance and, per label, the runs' configs."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ValueError(f"directory must hold a stored experiment ({MANIFEST}), got {str(directory)!r}")
    return json.loads(path.read_text())


def load(directory) -> dict:
    """The runs stored in ``directory`` by :func:`save`: {label: [Run, ...]}."""
    directory = Path(directory)
    out = {}
    for label, entries in manifest(directory)["runs"].items():
        runs = []
        for entry in entries:
            with np.load(directory / entry["file"]) as data:
                names = tuple(entry["names"])
                snr_steps = data["snr_steps"].tolist()
                runs.append(Run(
                    config=Config.from_json(entry["config"]),
                    names=names,
                    sizes=tuple(entry["sizes"]),
                    decayed=data["decayed"],
                    lr=data["lr"],
                    loss=data["loss"],
                    fields={f: data[f"field_{f}"].astype(np.float64) for f in FIELDS},
                    lag_products=data["lag_blocks"],
                    init_weight_rms=data["init_weight_rms"],
                    snr={s: dict(zip(names, row.tolist())) for s, row in zip(snr_steps, data["snr"])},
                    cos_theta_grad=data["cos_theta_grad"],
                    test_accuracy=float(data["test_accuracy"]),
                ))
        out[label] = runs
    return out
