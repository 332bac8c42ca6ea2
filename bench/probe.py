"""The cost of the instrument (optstats.probe.Watch), for bench/run.py.

Reported as ratios to a plain training step in the same process (CPU
seconds, one thread): the time the watch's hooks take on a record step and
on the other steps, measured inside the hooks, and a direct comparison of
whole steps with and without the watch. The memory is measured in a fresh
process whose allocator returns every large block to the system at once
(MALLOC_MMAP_THRESHOLD_), so that the resident set follows the live
memory: the record's extra peak (VmHWM after resetting it, minus VmRSS
before) and what stays after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from optstats.probe import Watch

#: the issue's targets
TARGET_EVERY_1 = 0.05
TARGET_EVERY_10 = 0.01


class Block(torch.nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(width)
        self.qkv = torch.nn.Linear(width, 3 * width, bias=False)
        self.out = torch.nn.Linear(width, width, bias=False)
        self.norm2 = torch.nn.LayerNorm(width)
        self.fc1 = torch.nn.Linear(width, 4 * width, bias=False)
        self.fc2 = torch.nn.Linear(4 * width, width, bias=False)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(a.transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class GPT(torch.nn.Module):
    """A small GPT: vocabulary 4096, width 384, 6 blocks, untied head (13.8M parameters)."""

    def __init__(self, vocab=4096, width=384, depth=6, heads=6, context=256):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.pos = torch.nn.Parameter(0.02 * torch.randn(context, width))
        self.blocks = torch.nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, vocab, bias=False)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def gpt_setup(optimizer="adamw"):
    torch.manual_seed(0)
    model = GPT()
    if optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    else:  # Muon on the blocks' matrices; the watch takes one optimizer, so Muon alone
        matrices = [p for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("blocks")]
        for p in model.parameters():
            p.requires_grad_(any(p is q for q in matrices))
        opt = torch.optim.Muon(matrices, lr=0.02)
    gen = torch.Generator().manual_seed(1)

    def step():
        tokens = torch.randint(0, 4096, (8, 257), generator=gen)  # 8 x 256 = 2048 tokens a step
        opt.zero_grad(set_to_none=True)
        logits = model(tokens[:, :-1])
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).backward()
        opt.step()

    return model, opt, step


def network_setup(optimizer="adamw"):
    from optstats import network

    trainer = network.Trainer(network.Config())
    counter = iter(range(2, 10**9))
    return trainer.model, trainer.optimizer, lambda: trainer.step(next(counter))


SETUPS = {"gpt": gpt_setup, "network": network_setup}


def _timed_hooks(watch, seconds):
    """Replace the watch's hooks by timed copies: seconds["record"|"other"]
    collects the CPU time of both hooks, by kind of step."""
    for h in watch._hooks:
        h.remove()
    pre, post = watch._pre_hook, watch._post_hook
    box = {}

    def timed_pre(*a):
        box["t"] = time.process_time()
        pre(*a)
        box["pre"] = time.process_time() - box["t"]

    def timed_post(*a):
        recording = watch._recording
        t = time.process_time()
        post(*a)
        seconds["record" if recording else "other"].append(box["pre"] + time.process_time() - t)

    watch._hooks = [watch.optimizer.register_step_pre_hook(timed_pre),
                    watch.optimizer.register_step_post_hook(timed_post)]


def cost(setup="gpt", optimizer="adamw", rounds=3, steps=2):
    """CPU seconds: a plain step, the hooks on a record and on another step,
    and whole steps with a watch at every=1 against plain ones (medians)."""
    torch.set_num_threads(1)
    model, opt, step = SETUPS[setup](optimizer)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    step()  # the state exists; the first step's allocations are done
    seconds = {"record": [], "other": []}
    watch = Watch(model, opt, every=10)
    _timed_hooks(watch, seconds)
    watch.remove()
    plain, watched = [], []
    for _ in range(rounds):
        for _ in range(steps):
            t = time.process_time()
            step()
            plain.append(time.process_time() - t)
        w = Watch(model, opt, every=1)
        _timed_hooks(w, seconds)
        for _ in range(steps):
            t = time.process_time()
            step()
            watched.append(time.process_time() - t)
        w.remove()
    # the non-record hook cost: a watch at a large every, many steps' worth of hooks
    quiet = Watch(model, opt, every=10**9)
    _timed_hooks(quiet, seconds)
    step()
    quiet.remove()
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    step_s = median(plain)
    record_s, other_s = median(seconds["record"]), median(seconds["other"])
    return {"params": n_params, "step": step_s, "record": record_s, "other": other_s,
            "every_1": record_s / step_s, "every_10": (record_s + 9 * other_s) / 10 / step_s,
            "whole_steps_every_1": median(watched) / step_s - 1}


def _status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _memory_child(setup, optimizer):
    torch.set_num_threads(1)
    model, opt, step = SETUPS[setup](optimizer)
    params = [p for p in model.parameters() if p.requires_grad]
    step()
    rss0 = _status("VmRSS")
    watch = Watch(model, opt, every=10**9)
    attached = _status("VmRSS") - rss0
    step()  # a step without a record, then the record of that step by itself
    rss1 = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current RSS
    with torch.no_grad():
        # what the pre-hook keeps on a record step (Muon, or low-precision weights)
        watch._before = {id(p): p.detach().reshape(-1).clone() for p, _, _ in watch._params
                         if watch.kind == "muon" or p.dtype not in (torch.float32, torch.float64)}
    watch._record()
    peak = _status("VmHWM") - rss1
    watch._before = {}
    kept = _status("VmRSS") - rss1
    print(json.dumps({"attached": attached, "peak": peak, "kept": kept,
                      "largest": max(p.numel() * p.element_size() for p in params),
                      "params_bytes": sum(p.numel() * p.element_size() for p in params),
                      "copy_needed": bool(watch._before) or watch.kind == "muon"}))


def memory(setup="gpt", optimizer="adamw"):
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--memory", setup, optimizer], capture_output=True, text=True,
                          env=env, timeout=1200, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


#: (rounds, steps per round) of the timing: Muon's bf16 Newton-Schulz makes
#: a step on one CPU thread tens of seconds, so it gets fewer
ROUNDS = {("gpt", "adamw"): (3, 2), ("gpt", "muon"): (1, 1), ("network", "adamw"): (5, 20)}


def _size(n):
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} kB"


def report(setup="gpt", optimizer="adamw"):
    """Print the ratios and the memory; True if the targets are met."""
    rounds, steps = ROUNDS[setup, optimizer]
    c = cost(setup, optimizer, rounds, steps)
    m = memory(setup, optimizer)
    print(f"  {setup} ({c['params']:,} trainable parameters, {optimizer}, one thread): plain step "
          f"{c['step']:.3f} s, hooks on a record step {c['record'] * 1e3:.1f} ms, on another step "
          f"{c['other'] * 1e6:.0f} us")
    print(f"    every=1: +{c['every_1']:.2%} of a step (target {TARGET_EVERY_1:.0%}); every=10: "
          f"+{c['every_10']:.3%} (target {TARGET_EVERY_10:.0%}); whole steps with the watch at every=1: "
          f"{c['whole_steps_every_1']:+.1%} (noisy: other processes share the cores)")
    allowed = 2 * m["largest"] + (m["params_bytes"] if m["copy_needed"] else 0)
    print(f"    memory: extra peak of a record {_size(m['peak'])} (allowed {_size(allowed)}: twice the "
          f"largest tensor {_size(m['largest'])}" + (" plus one copy of the weights" if m["copy_needed"] else "")
          + f"); attaching {_size(m['attached'])}, kept after a record {_size(m['kept'])} (resident-set "
          f"pages: below ~100 kB this is Python objects, not tensors)")
    return c["every_1"] <= TARGET_EVERY_1 and c["every_10"] <= TARGET_EVERY_10 and m["peak"] <= allowed


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory"]:
        _memory_child(sys.argv[2], sys.argv[3])
    else:
        ok = True
        for setup, optimizer in [("gpt", "adamw"), ("gpt", "muon"), ("network", "adamw")]:
            ok &= report(setup, optimizer)
        print("probe targets:", "met" if ok else "NOT met")
