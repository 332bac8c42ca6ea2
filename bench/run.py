"""Benchmarks (`make bench`): precision per CPU-second and the cost of a step.

Not a test: timings vary by machine. Reports, on this machine in one run:

1. the posts' own estimators, re-implemented here in their plain form (a numpy
   loop, the RMS over coordinates at the last step), against ours, as
   stderr^2 x CPU seconds (smaller is better), with the values side by side;
2. the cost of one optimizer step per coordinate against the cost of the
   Gaussians it consumes;
3. the noisy-quadratic lab (issue: "stderr below 1% of the value within
   seconds"): CPU seconds for eta*(B) at 11 batch sizes, to a 95% interval
   within +-0.8%, on the batch-size chapter's 8-coordinate problem D, with and
   without the control variates;
4. the weight-RMS trajectory of AdamW under a WSD schedule, with and without
   the momentum control variate (stderr^2 x CPU seconds);
5. the CPU time of the training chapter's grid (6 rules x 11 batch sizes x 4
   horizons, learning-rate searches included);
6. the cost of the instrument (optstats.probe.Watch, bench/probe.py) against
   a training step: a 13.8M-parameter GPT on 2,048 tokens a step with AdamW
   and with Muon, and the real-network chapter's model (targets: +5% at
   every=1, +1% at every=10; extra peak memory within twice the largest
   tensor, plus one copy of the weights where theta_{t-1} must be kept);
7. the wall time of every chapter run in a fresh kernel (target: under 60 s;
   90 s for the real-network chapter, which trains PyTorch networks);
8. the wall time of ``optstats weight-rms --optimizer muon`` and ``optstats
   muon-scale --adam-lr`` as a user runs them (a fresh process each), over
   shapes up to 16384 x 65536 (target: under 1 s each).

The baselines' standard errors come from the spread over their (iid)
coordinates, by the delta method for the square root.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from optstats import gradients, optimizers, schedules, simulate
from optstats.quadratic import NoisyQuadratic

SEED = 2025


def cpu(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def rms_with_stderr(x):
    """sqrt(mean x^2) over iid coordinates, with its delta-method stderr."""
    sq = x**2
    rms = np.sqrt(sq.mean())
    return rms, sq.std(ddof=1) / np.sqrt(sq.size) / (2 * rms)


def post_11267_update_rms(rng, n=10_000, steps=2000, b1=0.9, b2=0.95):
    """Post 11267's script: Adam on N(0,1) gradients, RMS of u at the last step."""
    m = v = 0.0
    for _ in range(steps):
        g = rng.standard_normal(n)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        u = m / v**0.5
    return rms_with_stderr(u)


def post_11307_weight_rms(rng, n=10_000, steps=100_000, b1=0.9, b2=0.95, lr=1e-3, wd=0.1):
    """Post 11307's script: AdamW from weights of RMS 0.1, RMS of theta at the end."""
    m = v = 0.0
    w = rng.standard_normal(n) * 0.1
    for _ in range(steps):
        g = rng.standard_normal(n)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        w = w - lr * (m / v**0.5 + wd * w)
    return rms_with_stderr(w)


def compare(name, baseline, ours):
    (b_val, b_se), b_cpu = baseline
    est, o_cpu = ours
    o_val, o_se = float(est.value), float(est.stderr)
    b_cost, o_cost = b_se**2 * b_cpu, o_se**2 * o_cpu
    z = (b_val - o_val) / np.hypot(b_se, o_se)
    print(f"\n{name}")
    print(f"  {'':10s} {'value':>10s} {'stderr':>10s} {'CPU s':>8s} {'stderr^2*CPU s':>15s}")
    print(f"  {'post':10s} {b_val:10.5f} {b_se:10.2e} {b_cpu:8.2f} {b_cost:15.3e}")
    print(f"  {'optstats':10s} {o_val:10.5f} {o_se:10.2e} {o_cpu:8.2f} {o_cost:15.3e}")
    print(f"  precision per CPU-second: {b_cost / o_cost:,.0f}x better; values differ by {z:+.2f} combined stderr")
    return b_cost / o_cost, z


def step_cost(rule, n=10_000, steps=2000):
    """CPU seconds per coordinate-step of rule.step, and of drawing its Gaussians."""
    rng = np.random.default_rng(SEED)
    stream = gradients.Gaussian()
    buf = np.empty((steps, n))
    _, t_draw = cpu(lambda: stream.draw(rng, steps, (n,), out=buf))
    state = rule.init((n,))

    def run():
        for k in range(steps):
            rule.step(state, buf[k])

    _, t_step = cpu(run)
    return t_step / (steps * n), t_draw / (steps * n)



#: the shapes the Muon calculator is timed at (fan-out, fan-in)
MUON_SHAPES = [(64, 64), (1024, 1024), (768, 3072), (4096, 11008), (4096, 16384), (16384, 65536)]


def muon_cli_cost():
    """Wall seconds of a fresh ``optstats`` process per Muon question and shape."""
    import subprocess

    rows = []
    for n, m in MUON_SHAPES:
        for args in (["weight-rms", "--optimizer", "muon", "--lr", "0.02", "--wd", "0.1", "--shape", str(n), str(m)],
                     ["muon-scale", "--shape", str(n), str(m), "--adam-lr", "3e-4"]):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "optstats", *args], capture_output=True, text=True)
            rows.append((args[0], n, m, time.perf_counter() - start, done.returncode))
    return rows


def main() -> int:
    print(f"numpy {np.__version__}; all times are CPU seconds of this process")
    ok = True
    rng = np.random.default_rng(SEED)
    gain, z = compare(
        "Adam update RMS, beta = (0.9, 0.95), N(0, 1) gradients (post 11267)",
        cpu(lambda: post_11267_update_rms(rng)),
        cpu(lambda: simulate.update_rms(optimizers.Adam(0.9, 0.95), gradients.Gaussian(), rng=rng)),
    )
    ok &= gain >= 100 and abs(z) < 4
    gain, z = compare(
        "AdamW weight RMS, lr = 1e-3, wd = 0.1, 1e5 steps (post 11307)",
        cpu(lambda: post_11307_weight_rms(rng)),
        cpu(lambda: simulate.weight_rms(optimizers.Adam(0.9, 0.95), gradients.Gaussian(), lr=1e-3, wd=0.1, rng=rng)),
    )
    ok &= gain >= 100 and abs(z) < 4

    print("\nCost of one step per coordinate (10,000 coordinates, in-place), against its Gaussians")
    for rule in [optimizers.SGDM(0.9), optimizers.SignSGDM(0.9), optimizers.SoftSignSGDM(0.9, 0.1),
                 optimizers.Adam(0.9, 0.95), optimizers.Adam(0.9, 0.95, eps=1e-8, bias_correction=True)]:
        t_step, t_draw = step_cost(rule)
        ratio = t_step / t_draw
        ok &= ratio <= 2
        print(f"  {rule!r:70s} step {t_step * 1e9:5.1f} ns, Gaussian {t_draw * 1e9:5.1f} ns, ratio {ratio:.2f}")
    print("\nThe Muon calculator: a fresh optstats process per question (wall time; target under 1 s each)")
    for name, n, m, wall, rc in muon_cli_cost():
        ok &= wall < 1.0 and rc == 0
        print(f"  {name:11s} {n:6d} x {m:6d}  {wall:5.2f} s" + ("" if wall < 1.0 and rc == 0 else "  (NOT met)"))
    print("\nNoisy-quadratic lab: eta*(B) at 11 batch sizes in [1, 1e5], 95% interval within +-0.8% (problem D)")
    d = 8
    g = np.logspace(-1, 0, d) * np.tile([1.0, -1.0], d // 2)
    lab = NoisyQuadratic(g, np.diag(np.linspace(0.5, 2.0, d)), 400.0 * np.eye(d))
    batch = np.geomspace(1, 1e5, 11)
    for rule in [optimizers.SGDM(0.9), optimizers.SignSGDM(0.9), optimizers.Adam(0.9, 0.95)]:
        for cv in (True, False):
            est, t = cpu(lambda: lab.optimal_lr(rule, batch, rng=np.random.default_rng(SEED), control_variates=cv))
            met = bool(np.all(est.relative_halfwidth95 <= 0.008))
            ok &= met or not cv
            print(f"  {rule!r:62s} control variates {str(cv):5s}: {t:6.2f} CPU s, widest +-{est.relative_halfwidth95.max():.2%}"
                  + ("" if met else " (max_steps reached)"))
    print("\nWeight RMS of AdamW (bias correction) under WSD, 10^4 steps, 20,000 coordinates, 5 recorded steps")
    adam = optimizers.Adam(0.9, 0.95, bias_correction=True)
    lr = schedules.wsd(10_000, 2e-3, 500, 7_000)
    costs = {}
    for cv in (False, True):
        est, t = cpu(lambda: simulate.weight_rms_trajectory(
            adam, gradients.Gaussian(), lr=lr, wd=0.1, steps=[500, 3000, 7000, 8500, 10_000], theta0_rms=0.05,
            rng=np.random.default_rng(SEED), n_coords=20_000, control_variate=cv))
        costs[cv] = float(np.mean((est.stderr / est.value) ** 2)) * t
        print(f"  control variate {str(cv):5s}: {t:6.2f} CPU s, relative stderr up to {np.max(est.stderr / est.value):.3%}")
    gain = costs[False] / costs[True]
    ok &= gain >= 10
    print(f"  precision per CPU-second: {gain:,.0f}x better with the control variate")
    print("\nThe lab trains (training chapter's grid): best constant lr after K in {1, 10, 100, 1000} steps,"
          " 11 batch sizes, problem D, zero start")
    total = 0.0
    for rule in (optimizers.SGDM(0.0), optimizers.SGDM(0.9), optimizers.SignSGDM(0.0), optimizers.SignSGDM(0.9),
                 optimizers.Adam(0.0, 0.95, bias_correction=True), optimizers.Adam(0.9, 0.95, bias_correction=True)):
        exact = type(rule) is optimizers.SGDM
        est, t = cpu(lambda: lab.optimal_lr_after(
            rule, batch, [1, 10, 100, 1000], rng=None if exact else np.random.default_rng(SEED)))
        total += t
        print(f"  {rule!r:62s} {'exact' if exact else 'Monte Carlo (256 replicas)':28s} {t:6.2f} CPU s,"
              f" widest 95% interval +-{np.max(est.relative_halfwidth95):.1%}")
    print(f"  grid total: {total:.1f} CPU s")
    print("\nThe instrument, optstats.probe.Watch (CPU seconds of its hooks over a plain step; memory in a"
          " fresh process)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import probe

    for setup, optimizer in [("gpt", "adamw"), ("gpt", "muon"), ("network", "adamw")]:
        ok &= probe.report(setup, optimizer)
    print("\nEvery chapter in a fresh kernel (wall time; target: under 60 s each)")
    # the real-network chapter trains PyTorch networks: its budget is 90 s
    budgets = {"real-network.ipynb": 90}
    for chapter in sorted((Path(__file__).resolve().parents[1] / "book").glob("*.ipynb")):
        nb = nbformat.read(chapter, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(chapter.parent)}}).execute()
        wall = time.perf_counter() - start
        budget = budgets.get(chapter.name, 60)
        ok &= wall < budget
        print(f"  {chapter.name:22s} {wall:5.1f} s" + ("" if wall < budget else f"  (over {budget} s)"))
    print("\ntargets (>= 100x precision per CPU-second, agreeing values, step <= 2x Gaussian, lab within +-0.8%"
          " with control variates, >= 10x for the trajectory's control variate, the watch within +5% (every=1), +1% (every=10) and its memory bound,"
          " every chapter within its budget):",
          "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
