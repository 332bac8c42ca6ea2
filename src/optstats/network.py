"""The real network of the chapter "The theory in a real network".

A one-block transformer over the rows of scikit-learn's bundled 8x8 digits
(the rows are the tokens), trained with ``torch.optim.AdamW`` and watched at
every step by :class:`optstats.probe.AdamWatch`. It has the layer kinds the
posts' readers train: linear maps without bias, LayerNorm gains, attention
with QK-norm (so the query and key matrices are exactly scale-invariant), a
GELU MLP, a learned position table and a classifier head with a bias.

Like ``probe``, this module imports torch (and scikit-learn, for the data);
nothing else in the package imports it.

Design decisions, each for a reason the chapter states:

- minibatches are drawn with replacement, so that given the weights the
  gradient noise is exactly independent in time, as the posts assume: any
  temporal correlation measured here comes from the weights' own motion;
- weight decay acts on the tensors with two or more axes (the matrices and
  the position table, nanoGPT's convention), not on gains and the bias;
- one thread and ``torch.use_deterministic_algorithms(True)``: the run is a
  function of its seed on a given machine kind.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import platform
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from . import _validate, runs, schedules
from .probe import AdamWatch
from .runs import FIELDS, Config, Run  # noqa: F401  (Config and Run are part of this module's API)

#: rows of an image (the tokens) and pixels per row (a token's features)
ROWS = PIXELS = 8
CLASSES = 10
#: images held out to report the test accuracy (of 1,797)
TEST_IMAGES = 360


def digits(seed: int = 0):
    """(x_train, y_train, x_test, y_test): the 8x8 digits as (n, 8, 8) float32
    tensors standardised with the training images' mean and std, split at
    random (seeded) into 1,437 training and 360 test images."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train = order[:TEST_IMAGES], order[TEST_IMAGES:]
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return x[train], y[train], x[test], y[test]


class RowTransformer(torch.nn.Module):
    """Pre-LN transformer block (attention with QK-norm, GELU MLP) over the
    image rows, mean-pooled, then a linear classifier."""

    def __init__(self, width: int = 32, heads: int = 2):
        super().__init__()
        if width % heads:
            raise ValueError(f"width must be a multiple of heads={heads}, got {width}")
        nn = torch.nn
        self.heads = heads
        head_width = width // heads
        self.embed = nn.Linear(PIXELS, width, bias=False)
        self.pos = nn.Parameter(0.02 * torch.randn(ROWS, width))
        self.norm1 = nn.LayerNorm(width, bias=False)
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        # QK-norm without gains: a gain on both would be redundant (only
        # their product enters q.k) and the two would train identically
        self.qnorm = nn.LayerNorm(head_width, elementwise_affine=False)
        self.knorm = nn.LayerNorm(head_width, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(width, bias=False)
        self.fc1 = nn.Linear(width, 4 * width, bias=False)
        self.fc2 = nn.Linear(4 * width, width, bias=False)
        self.norm3 = nn.LayerNorm(width, bias=False)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x):
        n, rows, _ = x.shape
        h = self.embed(x) + self.pos

        def split(z):  # (n, rows, width) -> (n, heads, rows, head width)
            return z.view(n, rows, self.heads, -1).transpose(1, 2)

        y = self.norm1(h)
        q, k = self.qnorm(split(self.query(y))), self.knorm(split(self.key(y)))
        # attention written out (softmax(q k^T / sqrt(d)) v): the same maths as
        # F.scaled_dot_product_attention, which torch.func.vmap cannot batch
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        a = weights @ split(self.value(y))
        h = h + self.out(a.transpose(1, 2).reshape(h.shape))
        h = h + self.fc2(F.gelu(self.fc1(self.norm2(h))))
        return self.head(self.norm3(h).mean(dim=1))


def decayed(parameter) -> bool:
    """Weight decay on tensors with two or more axes, as practice does."""
    return parameter.ndim >= 2


def model(config: Config) -> RowTransformer:
    """The network of ``config``, initialised from its seed."""
    torch.manual_seed(config.seed)
    return RowTransformer(config.width, config.heads)


class Trainer:
    """The model, its AdamW (two groups: decayed and not), the data and the
    minibatch generator of one run; :meth:`step` takes training step t."""

    def __init__(self, config: Config):
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        self.config = config
        self.x, self.y, self.x_test, self.y_test = digits(config.seed)
        self.model = model(config)
        named = list(self.model.named_parameters())
        groups = [
            {"params": [p for n, p in named if decayed(p)], "weight_decay": config.wd},
            {"params": [p for n, p in named if not decayed(p)], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)
        self.lr = schedules.wsd(config.steps, config.lr, config.warmup, config.decay_start)
        self.batches = torch.Generator().manual_seed(config.seed + 1)

    def step(self, t: int) -> float:
        """Training step t (1-based): one minibatch drawn with replacement; the loss."""
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.lr[t - 1])
        index = torch.randint(0, len(self.y), (self.config.batch_size,), generator=self.batches)
        self.optimizer.zero_grad(set_to_none=False)
        loss = F.cross_entropy(self.model(self.x[index]), self.y[index])
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def test_accuracy(self) -> float:
        with torch.no_grad():
            return (self.model(self.x_test).argmax(1) == self.y_test).double().mean().item()


def train(config: Config = Config()) -> Run:
    """Train the row transformer with AdamW under ``config`` and watch every step."""
    trainer = Trainer(config)
    watch = AdamWatch(trainer.model, trainer.optimizer)
    named = list(trainer.model.named_parameters())
    names = tuple(n for n, _ in named)
    sizes = tuple(p.numel() for _, p in named)
    with torch.no_grad():
        init_rms = np.array([p.double().pow(2).mean().sqrt().item() for _, p in named])
    fields = {f: np.full((config.steps, len(names)), np.nan) for f in FIELDS}
    loss = np.empty(config.steps)
    lags = _LagProducts(config, sizes)
    snapshots = {}
    for t in range(1, config.steps + 1):
        loss[t - 1] = trainer.step(t)
        record = watch.record()
        records = [record[name] for name in names]
        for f, values in fields.items():
            values[t - 1] = [r[f] for r in records]
        if t > config.warmup:
            if watch.flat.names != names:
                raise RuntimeError("every parameter must receive a gradient at every step")
            flat = watch.flat
            lags.add(t, flat.gradient / flat.denominator, flat.update)
        if t in config.snapshots:
            snapshots[t] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    return Run(config, names, sizes, np.array([decayed(p) for _, p in named]), trainer.lr, loss,
               fields, lags.table(), init_rms, snapshots,
               cos_theta_grad=cos_theta_grad(trainer.model, trainer.x[:256], trainer.y[:256]),
               test_accuracy=trainer.test_accuracy())


def cos_theta_grad(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """cos(theta, g) of every parameter tensor, g the gradient of the mean
    loss on (x, y): zero up to rounding for a scale-invariant tensor, whose
    gradient is orthogonal to its weights. Leaves the model's gradients as
    they were."""
    params = [p for _, p in net.named_parameters()]
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), params)
    return np.array([
        F.cosine_similarity(p.detach().flatten().double(), g.flatten().double(), dim=0).item()
        for p, g in zip(params, grads)
    ])


def train_measured(config: Config) -> Run:
    """:func:`train`, then the exact minibatch SNR (:func:`gradient_snr`) at
    every snapshot; the weights themselves are dropped (a stored run keeps
    what was measured on them, not them)."""
    run = train(config)
    run.snr = {step: gradient_snr(state, config) for step, state in run.snapshots.items()}
    run.snapshots = {}
    return run


def train_many(configs, processes: int = 2, *, measure: bool = False) -> list:
    """:func:`train` (or with ``measure``, :func:`train_measured`) for each
    config, in ``processes`` fresh processes side by side (``spawn``: no state
    is shared with the caller). Every run is single-threaded and
    deterministic, so the results are those of a serial loop, in the order
    of ``configs``."""
    processes = _validate.count("processes", processes)
    configs = list(configs)
    work = train_measured if measure else train
    if processes == 1:
        return [work(c) for c in configs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        return list(pool.map(work, configs))


#: the real-network chapter's runs: AdamW at beta = (0.9, 0.95) through a
#: warm-up, a constant phase of 3.6 memories 1/(lr wd) and a decay ("main"),
#: and beta1 = 0.6 over a constant phase only; every seed keeps its weights
#: every 100 steps for the SNR measured on them
MAIN = Config(steps=1600, warmup=100, decay_start=1300, lr=3e-3, wd=1.5, betas=(0.9, 0.95), batch_size=32,
              window=(900, 1300), snapshots=tuple(range(100, 1601, 100)))
ALT = dataclasses.replace(MAIN, betas=(0.6, 0.95), steps=500, decay_start=450, window=(200, 450),
                          snapshots=())
#: independent replicas of the whole experiment (initialisation, data split,
#: minibatch order): their spread is every error bar of the chapter, and the
#: tolerance of the re-run check (tests/test_stored_runs.py)
SEEDS = tuple(range(16))
#: where ``make runs`` writes the chapter's runs, relative to the repository
DATA = os.path.join("book", "data", "real-network")


def chapter_configs() -> dict:
    """{label: [Config per seed]} of the real-network chapter's experiment."""
    return {label: [dataclasses.replace(base, seed=s) for s in SEEDS]
            for label, base in (("main", MAIN), ("beta1-0.6", ALT))}


def provenance() -> dict:
    """What made a stored run: versions and the kernels torch was told to use."""
    keys = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "NPY_DISABLE_CPU_FEATURES")
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "environment": {k: os.environ.get(k) for k in keys},
    }


def make_runs(directory: str = DATA, processes: int = 2) -> None:
    """Train the chapter's experiment (:func:`chapter_configs`) and store it
    with :func:`optstats.runs.save`: ``make runs``, the only way the chapter's
    data are made."""
    experiment = chapter_configs()
    flat = [c for configs in experiment.values() for c in configs]
    for c in flat:  # what runs.save needs, checked before hours of training
        if (c.window[1] - c.window[0]) % runs.LAG_BLOCK:
            raise ValueError(f"window must last a multiple of {runs.LAG_BLOCK} steps to be stored, got {c.window}")
    done = iter(train_many(flat, processes, measure=True))
    runs.save(directory, {label: [next(done) for _ in configs] for label, configs in experiment.items()},
              provenance())


class _LagProducts:
    """Per tensor, on the window's steps: h_t . h_{t-k} for k = 0..lags, the
    beta1- and beta3-weighted sums of h_t . h_{t-k} over all past lags, and
    u_t . u_t with the beta3-weighted sum of u_t . u_{t-k}.

    One float64 buffer: a ring of the last ``lags`` vectors h (zeros before
    the warm-up ends) and three running sums E_t = beta E_{t-1} + x_t (of h
    at beta1 and beta3, of u at beta3, started after the warm-up), so that
    sum_k beta^k x_t . x_{t-k} = beta x_t . E_{t-1}. A step costs one small
    matrix-vector product per tensor, never a (lags x parameters) temporary.
    """

    def __init__(self, config: Config, sizes):
        self.config = config
        edges = np.cumsum((0,) + tuple(sizes))
        self.bounds = list(zip(edges[:-1], edges[1:]))
        beta3 = 1.0 - config.lr * config.wd
        self.weights = np.array([config.betas[0], beta3, beta3])
        self.past = torch.zeros(config.lags + 3, int(edges[-1]), dtype=torch.float64)
        self.seen = 0
        start, stop = config.window
        self.rows = np.zeros((stop - start, len(sizes), config.lags + 5))

    def add(self, t: int, h: torch.Tensor, u: torch.Tensor) -> None:
        lags = self.config.lags
        start, stop = self.config.window
        if start < t <= stop:
            table = torch.stack([
                torch.cat([
                    torch.dot(h[a:b], h[a:b]).reshape(1),
                    self.past[:lags + 2, a:b] @ h[a:b],
                    torch.dot(u[a:b], u[a:b]).reshape(1),
                    (self.past[lags + 2, a:b] @ u[a:b]).reshape(1),
                ])
                for a, b in self.bounds
            ]).numpy()
            # ring slot (seen - k) % lags holds h_{t-k}
            order = (self.seen - 1 - np.arange(lags)) % lags
            row = self.rows[t - start - 1]
            row[:, 0] = table[:, 0]
            row[:, 1:lags + 1] = table[:, 1 + order]
            row[:, lags + 1:lags + 3] = table[:, lags + 1:lags + 3] * self.weights[:2]
            row[:, lags + 3] = table[:, lags + 3]
            row[:, lags + 4] = table[:, lags + 4] * self.weights[2]
        emas = self.past[lags:]
        emas.mul_(torch.from_numpy(self.weights)[:, None])
        emas[:2].add_(h)
        emas[2].add_(u)
        self.past[self.seen % lags] = h
        self.seen += 1

    def table(self) -> np.ndarray:
        return self.rows


def gradient_snr(state: dict, config: Config, batch_size: int | None = None, chunk: int = 256) -> dict:
    """The SNR ||mu||^2 / ||sigma_B||^2 of a minibatch gradient, per tensor,
    at the weights ``state`` (a ``state_dict`` of :func:`train`'s model).

    Exact for the training set, not estimated: mu is the full-batch gradient
    and sigma_B^2 = sigma^2 / B the variance of a mean of B per-example
    gradients drawn with replacement (as :func:`train` draws them), with
    sigma^2 the variance of the per-example gradients over all 1,437 images,
    computed with ``torch.func`` (the per-example gradients in the model's
    float32, their sums in float64).
    """
    batch_size = config.batch_size if batch_size is None else _validate.count("batch_size", batch_size)
    x, y, _, _ = digits(config.seed)
    net = model(config)
    net.load_state_dict(state)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss(p, xi, yi):
        out = torch.func.functional_call(net, p, (xi[None],))
        return F.cross_entropy(out, yi[None])

    per_example = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    total = {k: torch.zeros(v.numel(), dtype=torch.float64) for k, v in params.items()}
    square = {k: torch.zeros(v.numel(), dtype=torch.float64) for k, v in params.items()}
    for start in range(0, len(y), chunk):
        grads = per_example(params, x[start:start + chunk], y[start:start + chunk])
        for k, g in grads.items():
            g = g.reshape(g.shape[0], -1).double()
            total[k] += g.sum(0)
            square[k] += (g * g).sum(0)
    n = len(y)
    out = {}
    for k in params:
        mean = total[k] / n
        # float64 sums over 1,437 examples: the subtraction loses ~1e-13 relative
        variance = square[k].sum() / n - mean @ mean
        out[k] = float(mean @ mean / (variance / batch_size))
    return out


if __name__ == "__main__":
    import sys

    make_runs(*sys.argv[1:2])
