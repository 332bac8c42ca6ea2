"""The real networks of the chapter "The theory in real networks".

Two networks, each trained with ``torch.optim.AdamW`` and watched at every
step by :class:`optstats.probe.Watch`, the instrument a reader attaches to
their own training:

- ``task="digits"``: a one-block transformer over the rows of scikit-learn's
  bundled 8x8 digits (the rows are the tokens), a classifier. It has linear
  maps without bias, LayerNorm gains, attention with QK-norm (so the query
  and key matrices are exactly scale-invariant), a GELU MLP, a learned
  position table and a head with a bias;
- ``task="chars"``: a decoder-only character-level language model (token and
  position embeddings, ``depth`` pre-LN blocks of causal attention and a GELU
  MLP, a final LayerNorm and an untied head), trained on the Python
  documentation's help topics that ship in the repository
  (``book/data/corpus``, PSF licence): the kind of network the posts'
  readers train, scaled to a CPU.

Like ``probe``, this module imports torch (and scikit-learn, for the data);
nothing else in the package imports it.

Design decisions, each for a reason the chapter states:

- minibatches (images, or windows of the text) are drawn with replacement,
  so that given the weights the gradient noise is exactly independent in
  time, as the posts assume: any temporal correlation measured here comes
  from the weights' own motion;
- weight decay acts on the tensors with two or more axes (the matrices, the
  embeddings and the position table, nanoGPT's convention), not on gains and
  the bias;
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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from . import _validate, runs, schedules
from .probe import Watch
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


#: the language model's corpus: the Python documentation's help topics
#: (see its README for provenance and licence)
CORPUS = Path(__file__).resolve().parents[2] / "book" / "data" / "corpus" / "python-reference.txt"
#: the share of the corpus (its end) held out for the test accuracy
HELD_OUT = 0.1
#: held-out windows the test accuracy is measured on, evenly spaced
TEST_WINDOWS = 256


def corpus():
    """(train, test, alphabet): the corpus as int64 tensors of character
    codes (indices into ``alphabet``, its sorted distinct characters), split
    into its first 90% and its last 10%."""
    text = CORPUS.read_text(encoding="utf-8")
    alphabet = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(alphabet)}
    codes = torch.tensor([index[c] for c in text], dtype=torch.int64)
    cut = int(len(codes) * (1 - HELD_OUT))
    return codes[:cut], codes[cut:], alphabet


class Block(torch.nn.Module):
    """Pre-LN decoder block: causal multi-head attention, then a GELU MLP."""

    def __init__(self, width: int, heads: int, context: int):
        super().__init__()
        nn = torch.nn
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, bias=False)
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.norm2 = nn.LayerNorm(width, bias=False)
        self.fc1 = nn.Linear(width, 4 * width, bias=False)
        self.fc2 = nn.Linear(4 * width, width, bias=False)
        mask = torch.full((context, context), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, h):
        n, length, _ = h.shape

        def split(z):  # (n, length, width) -> (n, heads, length, head width)
            return z.view(n, length, self.heads, -1).transpose(1, 2)

        y = self.norm1(h)
        q, k, v = split(self.query(y)), split(self.key(y)), split(self.value(y))
        # written out, as in RowTransformer, so that torch.func.vmap batches it
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + self.mask[:length, :length]
        a = torch.softmax(scores, dim=-1) @ v
        h = h + self.out(a.transpose(1, 2).reshape(h.shape))
        return h + self.fc2(F.gelu(self.fc1(self.norm2(h))))


class CharTransformer(torch.nn.Module):
    """Decoder-only character-level language model: token and position
    embeddings, ``depth`` :class:`Block`, a final LayerNorm and an untied
    head. Matrices and embeddings start at N(0, 0.02^2), GPT-2's
    initialisation."""

    def __init__(self, vocab: int, context: int, width: int, heads: int, depth: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width must be a multiple of heads={heads}, got {width}")
        nn = torch.nn
        self.embed = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.zeros(context, width))
        self.blocks = nn.ModuleList(Block(width, heads, context) for _ in range(depth))
        self.norm = nn.LayerNorm(width, bias=False)
        self.head = nn.Linear(width, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, x):
        h = self.embed(x) + self.pos[:x.shape[-1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


class Digits:
    """The digits task: images in, class out; the loss is the cross-entropy."""

    def __init__(self, config: Config):
        if config.depth != 1 or config.context != ROWS:
            raise ValueError(f"task='digits' has depth 1 and context {ROWS} (its rows), "
                             f"got depth={config.depth}, context={config.context}")
        self.x, self.y, self.x_test, self.y_test = digits(config.seed)

    def model(self, config: Config) -> torch.nn.Module:
        return RowTransformer(config.width, config.heads)

    def batch(self, generator, size: int):
        index = torch.randint(0, len(self.y), (size,), generator=generator)
        return self.x[index], self.y[index]

    @staticmethod
    def loss(net, x, y):
        return F.cross_entropy(net(x), y)

    def test_accuracy(self, net) -> float:
        with torch.no_grad():
            return (net(self.x_test).argmax(1) == self.y_test).double().mean().item()

    def probe_batch(self):
        """The examples cos(theta, g) is measured on: the first 256 training images."""
        return self.x[:256], self.y[:256]

    def examples(self, config: Config):
        """(x, y, exact): the examples the minibatch SNR is measured over, and
        whether they are the whole population (all 1,437 training images)."""
        return self.x, self.y, True


class Chars:
    """The language-model task: windows of ``context`` characters in, the
    next character at every position out; the loss is the mean cross-entropy."""

    #: windows the minibatch SNR is estimated from (the population, every
    #: window of the training text, is too large to sum exactly)
    SNR_WINDOWS = 1024

    def __init__(self, config: Config):
        self.context = config.context
        self.train, self.test, self.alphabet = corpus()
        self.seed = config.seed

    def model(self, config: Config) -> torch.nn.Module:
        return CharTransformer(len(self.alphabet), config.context, config.width, config.heads, config.depth)

    def _windows(self, codes, starts):
        span = starts[:, None] + torch.arange(self.context + 1)
        w = codes[span]
        return w[:, :-1], w[:, 1:]

    def batch(self, generator, size: int):
        starts = torch.randint(0, len(self.train) - self.context, (size,), generator=generator)
        return self._windows(self.train, starts)

    @staticmethod
    def loss(net, x, y):
        logits = net(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def test_accuracy(self, net) -> float:
        """Next-character accuracy on TEST_WINDOWS evenly spaced held-out windows."""
        starts = torch.linspace(0, len(self.test) - self.context - 1, TEST_WINDOWS).long()
        x, y = self._windows(self.test, starts)
        with torch.no_grad():
            return (net(x).argmax(-1) == y).double().mean().item()

    def probe_batch(self):
        """The windows cos(theta, g) is measured on: 256 evenly spaced training windows."""
        starts = torch.linspace(0, len(self.train) - self.context - 1, 256).long()
        return self._windows(self.train, starts)

    def examples(self, config: Config):
        starts = torch.randint(0, len(self.train) - self.context, (self.SNR_WINDOWS,),
                               generator=torch.Generator().manual_seed(config.seed + 2))
        return (*self._windows(self.train, starts), False)


TASKS = {"digits": Digits, "chars": Chars}


def task(config: Config):
    """The data and loss of ``config.task``."""
    return TASKS[config.task](config)


def decayed(parameter) -> bool:
    """Weight decay on tensors with two or more axes, as practice does."""
    return parameter.ndim >= 2


def model(config: Config, data=None) -> torch.nn.Module:
    """The network of ``config``, initialised from its seed."""
    data = task(config) if data is None else data
    torch.manual_seed(config.seed)
    return data.model(config)


class Trainer:
    """The model, its AdamW (two groups: decayed and not), the data and the
    minibatch generator of one run; :meth:`step` takes training step t."""

    def __init__(self, config: Config):
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        self.config = config
        self.data = task(config)
        self.model = model(config, self.data)
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
        x, y = self.data.batch(self.batches, self.config.batch_size)
        self.optimizer.zero_grad(set_to_none=False)
        loss = self.data.loss(self.model, x, y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def test_accuracy(self) -> float:
        return self.data.test_accuracy(self.model)


def train(config: Config = Config()) -> Run:
    """Train the row transformer with AdamW under ``config`` and watch every step."""
    trainer = Trainer(config)
    watch = Watch(trainer.model, trainer.optimizer)
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
        record = watch.last
        if sorted(record) != sorted(names) or any(record[n]["step"] != t for n in names):
            raise RuntimeError("every parameter must take every step")
        for f, values in fields.items():
            values[t - 1] = [record[n][f] for n in names]
        if t > config.warmup:
            lags.add(t, *adam_normalised(trainer.optimizer, [p for _, p in named]))
        if t in config.snapshots:
            snapshots[t] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    return Run(config, names, sizes, np.array([decayed(p) for _, p in named]), trainer.lr, loss,
               fields, lags.table(), init_rms, snapshots,
               cos_theta_grad=cos_theta_grad(trainer.model, trainer.data, *trainer.data.probe_batch()),
               test_accuracy=trainer.test_accuracy())


def adam_normalised(optimizer, params) -> tuple:
    """(h, u) after a step of torch's Adam/AdamW, as flat float64 vectors
    over ``params`` in order: the gradient as Adam normalises it,
    h = g / (sqrt(vhat) + eps), and the update u = mhat / (sqrt(vhat) + eps),
    computed from the optimizer's state as torch computes its step
    (denominator sqrt(v) / sqrt(1 - beta2^t) + eps, mhat = m / (1 - beta1^t))."""
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    h, u = [], []
    with torch.no_grad():
        for p in params:
            group, state = group_of[id(p)], optimizer.state[p]
            beta1, beta2 = group["betas"]
            t = float(state["step"])
            v = state["exp_avg_sq"].double().flatten()
            denominator = v.sqrt().div_(math.sqrt(1.0 - beta2**t)).add_(group["eps"])
            h.append(p.grad.double().flatten() / denominator)
            u.append(state["exp_avg"].double().flatten().div(1.0 - beta1**t) / denominator)
    return torch.cat(h), torch.cat(u)


def cos_theta_grad(net: torch.nn.Module, data, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """cos(theta, g) of every parameter tensor, g the gradient of the mean
    loss of the task ``data`` on (x, y): zero up to rounding for a
    scale-invariant tensor, whose gradient is orthogonal to its weights.
    Leaves the model's gradients as they were."""
    params = [p for _, p in net.named_parameters()]
    grads = torch.autograd.grad(data.loss(net, x, y), params)
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


#: the real-network chapter's calibration runs, one per network: AdamW at
#: beta = (0.9, 0.95) through a warm-up, a constant phase of several memories
#: 1/(lr wd) and a decay; every seed keeps its weights at the snapshots for
#: the SNR measured on them. The digits: memory 222 steps, constant phase 5.4
#: memories. The language model: memory 250 steps, constant phase 4.2
#: memories (weight decay 2 at lr 2e-3 puts several memories inside a CPU
#: budget; practice's 0.1 at 3e-4 would need 30x the steps)
MAIN = Config(steps=1600, warmup=100, decay_start=1300, lr=3e-3, wd=1.5, betas=(0.9, 0.95), batch_size=32,
              window=(900, 1300), snapshots=tuple(range(100, 1601, 100)))
CHARS = Config(task="chars", depth=2, context=32, width=48, heads=4, batch_size=16, lr=2e-3, wd=2.0,
               betas=(0.9, 0.95), steps=1400, warmup=100, decay_start=1150, window=(650, 1150),
               snapshots=tuple(range(200, 1401, 200)))
#: the out-of-sample runs: one hyperparameter changed from the calibration
#: run at a time, over the calibration run's window in a constant phase
#: (it starts 3.6 memories after the warm-up for the digits, 2.2 for the
#: language model: the weight RMS's transient has decayed to exp(-4.4) or less)
CHANGES = {
    "beta1-0.6": lambda c: {"betas": (0.6, c.betas[1])},
    "lr-half-wd-double": lambda c: {"lr": c.lr / 2, "wd": c.wd * 2},
    "batch-x4": lambda c: {"batch_size": 4 * c.batch_size},
}
#: independent replicas of each run (initialisation, data split, minibatch
#: order): their spread is every error bar of the chapter, and the tolerance
#: of the re-run check (tests/test_stored_runs.py), which uses the
#: calibration runs' seeds
SEEDS = {"digits": tuple(range(16)), "chars": tuple(range(12)), "changed": tuple(range(6))}
#: where ``make runs`` writes the chapter's runs, relative to the repository
DATA = os.path.join("book", "data", "real-network")


def changed(base: Config, change: str) -> Config:
    """The out-of-sample run ``change`` (a key of CHANGES) of the calibration
    run ``base``: its constant phase only, with the window as long as the
    calibration window and ending 50 steps before the run does."""
    start, stop = base.window
    steps = stop + 50
    return dataclasses.replace(base, steps=steps, decay_start=stop, snapshots=(), **CHANGES[change](base))


def chapter_configs() -> dict:
    """{label: [Config per seed]} of the real-network chapter's experiment:
    per network ("digits", "chars") the calibration run ("-main") and the
    out-of-sample runs (CHANGES)."""
    out = {}
    for name, base in (("digits", MAIN), ("chars", CHARS)):
        out[f"{name}-main"] = [dataclasses.replace(base, seed=s) for s in SEEDS[name]]
        for change in CHANGES:
            out[f"{name}-{change}"] = [dataclasses.replace(changed(base, change), seed=s)
                                       for s in SEEDS["changed"]]
    return out


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

    mu is the mean per-example gradient and sigma_B^2 = sigma^2 / B the
    variance of a mean of B per-example gradients drawn with replacement (as
    :func:`train` draws them), with sigma^2 the variance of the per-example
    gradients, computed with ``torch.func`` (the per-example gradients in the
    model's float32, their sums in float64). For the digits the examples are
    all 1,437 training images and the SNR is exact for the training set. For
    the language model an example is one window and the population (every
    window of the text) is too large: both moments are estimated from
    ``Chars.SNR_WINDOWS`` windows drawn with replacement, sigma^2 with
    n - 1 and ||mu||^2 as ||mean||^2 - sigma^2 / n, which is unbiased.
    """
    batch_size = config.batch_size if batch_size is None else _validate.count("batch_size", batch_size)
    data = task(config)
    x, y, exact = data.examples(config)
    net = model(config, data)
    net.load_state_dict(state)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss(p, xi, yi):
        return data.loss(lambda z: torch.func.functional_call(net, p, (z,)), xi[None], yi[None])

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
        # float64 sums over n examples: the subtraction loses ~1e-13 relative
        variance = square[k].sum() / n - mean @ mean
        signal = mean @ mean
        if not exact:  # sample moments: sigma^2 with n - 1, ||mu||^2 unbiased
            variance = variance * n / (n - 1)
            signal = signal - variance / n
        out[k] = float(signal / (variance / batch_size))
    return out


if __name__ == "__main__":
    import sys

    make_runs(*sys.argv[1:2])
