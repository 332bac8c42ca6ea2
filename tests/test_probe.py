"""The instrument, optstats.probe.Watch: every field against a hand computation.

References are computed here in numpy float64 from torch's own state after
each step (exp_avg, exp_avg_sq, step; Muon's momentum_buffer and torch's own
Newton-Schulz), the weights copied before and after every step, and
independent formulas (the angle as 2 arcsin(|a^ - b^| / 2), no atan2 of dot
products). The models are float64 unless a test says otherwise, so the
tolerances are float64 rounding amplified by the conditioning of each
quantity (stated where they are set).
"""

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from optstats import report, theory  # noqa: E402
from optstats.probe import Watch  # noqa: E402
from optstats.probe.watch import _CHUNK  # noqa: E402

# float64 models: sums of ~100 products lose ~1e-14 relative; the angle and
# the cosine come from dot products whose relative conditioning is at most
# ~1/angle ~ 1e3 here (angles >= 1e-3): 1e-9 leaves a factor 100 of margin
RTOL = 1e-9


class Net(torch.nn.Module):
    """Linear maps, a LayerNorm, a tied embedding/decoder pair and a frozen vector."""

    def __init__(self, vocab=7, width=6):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.fc = torch.nn.Linear(width, 2 * width)
        self.norm = torch.nn.LayerNorm(2 * width)
        self.proj = torch.nn.Linear(2 * width, width, bias=False)
        self.decode = torch.nn.Linear(width, vocab, bias=False)
        self.decode.weight = self.embed.weight  # tied
        self.frozen = torch.nn.Parameter(torch.ones(3), requires_grad=False)

    def forward(self, tokens):
        h = self.embed(tokens).mean(1)
        return self.decode(self.proj(torch.relu(self.norm(self.fc(h)))))


def batches(steps, seed=4):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield torch.randint(0, 7, (16, 5), generator=gen), torch.randint(0, 7, (16,), generator=gen)


def loss_of(net, x, y):
    return torch.nn.functional.cross_entropy(net(x), y)


def adamw(net, **kw):
    return torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.1, **kw)


def run(make_opt, *, every=1, steps=7, watch=True, dtype=torch.float64, net=None):
    """Train, keeping what the references need after every step."""
    torch.manual_seed(3)
    net = (net or Net()).to(dtype)
    opt = make_opt(net)
    w = Watch(net, opt, every=every) if watch else None
    log, previous = [], None
    for x, y in batches(steps):
        before = {id(p): p.detach().clone() for p in net.parameters()}
        opt.zero_grad(set_to_none=True)
        loss_of(net, x, y).backward()
        opt.step()
        state = {id(p): {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()}
                 for p in net.parameters() if p in opt.state}
        grads = {id(p): p.grad.detach().clone() for p in net.parameters() if p.grad is not None}
        # a record is a new dict: None on the steps between records
        fresh = None if w is None or w.last is previous else w.last
        previous = None if w is None else w.last
        log.append((before, state, grads, fresh))
    return net, opt, w, log


def f64(t):
    return t.detach().to(torch.float64).numpy().ravel()


def angle_between(b, a):
    # 2 arcsin(|a^ - b^| / 2): well conditioned at small angles
    return 2 * np.arcsin(np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b)) / 2)


def adam_reference(p, group, state, grad, before, after):
    b1, b2 = group["betas"]
    t = float(state["step"])
    m, v = f64(state["exp_avg"]), f64(state["exp_avg_sq"])
    u = m / (np.sqrt(v) / np.sqrt(1 - b2**t) + group["eps"]) / (1 - b1**t)
    b, a, g = f64(before), f64(after), f64(grad)
    ref = {
        "update_rms": np.sqrt(np.mean(u**2)),
        "weight_rms": np.sqrt(np.mean(a**2)),
        "momentum_ratio": np.linalg.norm(m) / np.linalg.norm(g),
        "grad_norm": np.linalg.norm(g),
        "sqrt_vhat_rms": np.sqrt(np.mean(v / (1 - b2**t))),
        "step": t,
        "lr": group["lr"],
        "wd": group["weight_decay"],
    }
    if np.any(b):
        ref["cos_theta_u"] = b @ u / (np.linalg.norm(b) * np.linalg.norm(u))
        ref["angle"] = angle_between(b, a)
    else:  # a zero-initialised tensor at its first step
        ref["cos_theta_u"] = ref["angle"] = math.nan
    return ref, u


def check(got, ref, rtol=RTOL):
    assert set(got) == set(report.FIELDS)
    for key, want in ref.items():
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(got[key]), key
        else:
            # cos: relative rtol, plus rtol in absolute terms for a cosine near 0
            tol = rtol * 1e-2
            if key == "angle":
                # Lagrange's |x|^2 |y|^2 - (x.y)^2 cancels when the step is
                # parallel to the weights (a LayerNorm gain of ones under L2):
                # absolute error ~ |step| / |theta| sqrt(eps64), 1.5e-8 of it
                tol = 1e-7 * ref["lr"] * got["update_rms"] / got["weight_rms"]
            assert got[key] == pytest.approx(want, rel=rtol, abs=tol), key


def names_by_id(net):
    out = {}
    for n, p in net.named_parameters(remove_duplicate=False):
        out.setdefault(id(p), []).append(n)
    return out


def check_adam_run(net, opt, log, every=1):
    names = names_by_id(net)
    for t, (before, state, grads, last) in enumerate(log, start=1):
        after = log[t][0] if t < len(log) else {id(p): p.detach() for p in net.parameters()}
        if t % every:
            continue
        expected = set()
        for gi, group in enumerate(opt.param_groups):
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                ref, u = adam_reference(p, group, state[id(p)], grads[id(p)], before[id(p)], after[id(p)])
                for n in names[id(p)]:
                    expected.add(n)
                    check(last[n], ref)
        assert set(last) == expected
    return names


# ---------------------------------------------------------------- Adam, AdamW


class MyAdamW(torch.optim.AdamW):
    """A user's subclass (a custom name and nothing else)."""


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: adamw(n), id="adamw"),
    pytest.param(lambda n: adamw(n, foreach=True), id="foreach"),
    pytest.param(lambda n: adamw(n, fused=True), id="fused"),
    pytest.param(lambda n: MyAdamW(n.parameters(), lr=0.05, weight_decay=0.1), id="subclass"),
    pytest.param(lambda n: torch.optim.Adam(n.parameters(), lr=0.05, weight_decay=0.1), id="adam-coupled-l2"),
    pytest.param(lambda n: torch.optim.Adam(n.parameters(), lr=0.05, weight_decay=0.1,
                                            decoupled_weight_decay=True), id="adam-decoupled"),
    pytest.param(lambda n: torch.optim.AdamW([
        {"params": [n.fc.weight, n.fc.bias], "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.0},
        {"params": [n.embed.weight, n.proj.weight], "lr": 0.02},
        {"params": list(n.norm.parameters()), "betas": (0.0, 0.9), "eps": 1e-10, "weight_decay": 0.5},
    ], lr=0.05, weight_decay=0.1), id="param-groups"),
])
def test_adam_fields_against_torch_state(make):
    net, opt, w, log = run(make)
    names = check_adam_run(net, opt, log)
    # tied: both names, the same numbers; frozen: absent
    assert w.last["embed.weight"] == w.last["decode.weight"]
    assert "frozen" not in w.last and names[id(net.frozen)] == ["frozen"]


def test_every_three_records_the_one_step_angle():
    net, opt, w, log = run(adamw, every=3, steps=9)
    assert [i for i, entry in enumerate(log, start=1) if entry[3]] == [3, 6, 9]
    assert list(w._record_steps) == [3, 6, 9]
    check_adam_run(net, opt, log, every=3)


def test_training_is_bitwise_identical_with_and_without_the_watch():
    for make, every in ((adamw, 1), (lambda n: adamw(n, fused=True), 2)):
        watched, *_ = run(make, every=every)
        plain, *_ = run(make, watch=False)
        for p, q in zip(watched.parameters(), plain.parameters()):
            assert torch.equal(p, q)


def test_float32_reconstruction_against_a_kept_copy():
    # float32 weights: theta_{t-1} reconstructed from theta_t and u. The
    # reference uses the true theta_{t-1}; the difference is the step's own
    # float32 rounding (module docstring): u, W to ~1e-6 (float32 u against
    # float64), cos to ~eps32 W / (lr U |cos|), angle to (eps32 W / lr U)^2
    net, opt, w, log = run(adamw, dtype=torch.float32)
    names = names_by_id(net)
    before, state, grads, last = log[-1]
    for p in net.parameters():
        if not p.requires_grad:
            continue
        group = opt.param_groups[0]
        ref, _ = adam_reference(p, group, state[id(p)], grads[id(p)], before[id(p)], p)
        got = last[names[id(p)][0]]
        for key in ("update_rms", "weight_rms", "momentum_ratio", "grad_norm", "sqrt_vhat_rms"):
            assert got[key] == pytest.approx(ref[key], rel=1e-5), key
        scale = 2**-24 * ref["weight_rms"] / (group["lr"] * ref["update_rms"])
        assert got["cos_theta_u"] == pytest.approx(ref["cos_theta_u"], abs=100 * scale)
        assert got["angle"] == pytest.approx(ref["angle"], rel=100 * scale + 1e-6)


def test_bfloat16_weights_keep_theta_before_in_their_dtype():
    # bf16 rounds as much as a step: the pre-hook keeps theta_{t-1} (bf16),
    # so cos and angle are those of the weights torch actually produced
    net, opt, w, log = run(adamw, dtype=torch.bfloat16, steps=3)
    names = names_by_id(net)
    before, state, grads, last = log[-1]
    p = net.fc.weight
    ref, _ = adam_reference(p, opt.param_groups[0], state[id(p)], grads[id(p)], before[id(p)], p)
    got = last[names[id(p)][0]]
    # bf16 u against its float64 evaluation: a few bf16 ulps (2^-8) relative
    assert got["update_rms"] == pytest.approx(ref["update_rms"], rel=2e-2)
    # the weights and their change are bf16 numbers: exact in float64 sums
    assert got["weight_rms"] == pytest.approx(ref["weight_rms"], rel=1e-12)
    assert got["angle"] == pytest.approx(ref["angle"], rel=1e-9)


# ---------------------------------------------------------------- Muon


def muon_run(nesterov, adjust_lr_fn, every=1, steps=5, watch=True):
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(6, 10, bias=False), torch.nn.Tanh(),
                              torch.nn.Linear(10, 4, bias=False)).double()
    opt = torch.optim.Muon(net.parameters(), lr=0.02, weight_decay=0.1, nesterov=nesterov,
                           adjust_lr_fn=adjust_lr_fn)
    w = Watch(net, opt, every=every) if watch else None
    gen = torch.Generator().manual_seed(6)
    log = []
    for _ in range(steps):
        x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
        before = {id(p): p.detach().clone() for p in net.parameters()}
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
        bufs = {id(p): opt.state[p]["momentum_buffer"].clone() for p in net.parameters()}
        grads = {id(p): p.grad.clone() for p in net.parameters()}
        log.append((before, bufs, grads, None if w is None else w.last))
    return net, opt, w, log


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("adjust_lr_fn", [None, "original", "match_rms_adamw"])
def test_muon_fields_against_torch_state(nesterov, adjust_lr_fn):
    from torch.optim._muon import _adjust_lr, _zeropower_via_newtonschulz

    net, opt, w, log = muon_run(nesterov, adjust_lr_fn)
    group = opt.param_groups[0]
    names = dict((id(p), n) for n, p in net.named_parameters())
    for t, (before, bufs, grads, last) in enumerate(log, start=1):
        after = log[t][0] if t < len(log) else {id(p): p.detach() for p in net.parameters()}
        for p in net.parameters():
            g, buf = grads[id(p)], bufs[id(p)]
            # torch's own update, from its state: O_t = NS(nesterov mix or buffer)
            mixed = g.lerp(buf, group["momentum"]) if nesterov else buf
            o = f64(_zeropower_via_newtonschulz(mixed, group["ns_coefficients"], group["ns_steps"], group["eps"]))
            b, a = f64(before[id(p)]), f64(after[id(p)])
            got = last[names[id(p)]]
            # O is bf16: exact in float64; recovering it from the float64
            # weights costs eps64 W / (lr U) ~ 1e-14 relative
            assert got["update_rms"] == pytest.approx(np.sqrt(np.mean(o**2)), rel=RTOL)
            assert got["weight_rms"] == pytest.approx(np.sqrt(np.mean(a**2)), rel=RTOL)
            assert got["momentum_ratio"] == pytest.approx(np.linalg.norm(f64(buf)) / np.linalg.norm(f64(g)), rel=RTOL)
            assert got["grad_norm"] == pytest.approx(np.linalg.norm(f64(g)), rel=RTOL)
            assert got["cos_theta_u"] == pytest.approx(b @ o / np.linalg.norm(b) / np.linalg.norm(o), rel=RTOL)
            assert got["angle"] == pytest.approx(angle_between(b, a), rel=RTOL)
            assert math.isnan(got["sqrt_vhat_rms"]) and got["step"] == t
            # the update the weights moved by, at torch's own lr scale
            lr_adj = _adjust_lr(group["lr"], adjust_lr_fn, p.shape)
            np.testing.assert_allclose(((1 - group["lr"] * group["weight_decay"]) * b - a) / lr_adj, o,
                                       rtol=0, atol=1e-12)


def test_muon_training_is_bitwise_identical_with_and_without_the_watch():
    watched, *_ = muon_run(True, None, every=2)
    plain, *_ = muon_run(True, None, watch=False)
    for p, q in zip(watched.parameters(), plain.parameters()):
        assert torch.equal(p, q)


# ---------------------------------------------------------------- misuse


def test_unsupported_optimizers_and_options_are_refused():
    net = Net()
    with pytest.raises(ValueError, match=r"torch\.optim\.Adam, torch\.optim\.AdamW or torch\.optim\.Muon.*SGD"):
        Watch(net, torch.optim.SGD(net.parameters(), lr=0.1))
    for flag in ("amsgrad", "maximize"):
        with pytest.raises(ValueError, match=f"{flag}=True"):
            Watch(net, torch.optim.AdamW(net.parameters(), **{flag: True}))
    with pytest.raises(ValueError, match="model"):
        Watch(object(), torch.optim.AdamW(net.parameters()))
    for every in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="every must be a whole number >= 1"):
            Watch(net, torch.optim.AdamW(net.parameters()), every=every)
    with pytest.raises(ValueError, match="not in model"):
        Watch(net, torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))]))
    lin = torch.nn.Linear(4, 4, bias=False).bfloat16()
    with pytest.raises(ValueError, match="float32 or float64 weights only"):
        Watch(lin, torch.optim.Muon(lin.parameters()))
    lin = torch.nn.Linear(4, 4, bias=False)
    opt = torch.optim.Muon(lin.parameters())
    opt.param_groups[0]["adjust_lr_fn"] = "spectral"  # torch's constructor refuses it; a group edit does not
    with pytest.raises(ValueError, match="adjust_lr_fn='spectral'"):
        Watch(lin, opt)


def test_options_switched_on_after_attaching_are_refused_at_the_record():
    net, opt, w, _ = run(adamw, steps=1)
    opt.param_groups[0]["amsgrad"] = True
    x, y = next(batches(1))
    loss_of(net, x, y).backward()
    with pytest.raises(ValueError, match="amsgrad=True"):
        opt.step()


def test_state_not_as_torch_writes_it_is_an_error():
    net, opt, w, _ = run(adamw, steps=1)
    p = net.fc.weight
    x, y = next(batches(1))
    loss_of(net, x, y).backward()
    # a wrapper that keeps Adam's moments under other names, say
    original = opt.state[p].pop("exp_avg_sq")
    opt.state[p]["exp_avg_sq_renamed"] = original
    with pytest.raises(Exception):  # torch itself may fail first; if it does not, the watch must
        opt.step()


def test_watch_state_check_names_the_tensor():
    net, opt, w, _ = run(adamw, steps=1)
    state = dict(opt.state[net.fc.weight])
    del state["exp_avg_sq"]
    with pytest.raises(RuntimeError, match=r"'fc.weight' is not what torch's AdamW writes.*exp_avg_sq"):
        w._check_state(net.fc.weight, ("fc.weight",), state)
    state = dict(opt.state[net.fc.weight], max_exp_avg_sq=torch.zeros(1))
    with pytest.raises(RuntimeError, match="unexpected"):
        w._check_state(net.fc.weight, ("fc.weight",), state)


def test_zero_grad_before_reading_and_reading_twice_change_nothing():
    net, opt, w, log = run(adamw, steps=3)
    last = {k: dict(v) for k, v in w.last.items()}
    opt.zero_grad(set_to_none=True)  # the record was taken inside step()
    assert w.last == last and w.last == last  # reading is not recording
    assert w.scalars()["optstats/fc.weight/angle"] == last["fc.weight"]["angle"] > 0


def test_a_parameter_without_gradient_is_left_out_with_a_warning():
    torch.manual_seed(3)
    net = Net().double()
    opt = adamw(net)
    w = Watch(net, opt)
    x, y = next(batches(1))
    loss_of(net, x, y).backward()
    net.proj.weight.grad = None  # e.g. a branch not taken this step
    with pytest.warns(RuntimeWarning, match=r"no gradient at step 1 for \['proj.weight'\]"):
        opt.step()
    assert "proj.weight" not in w.last and "fc.weight" in w.last


def test_a_step_skipped_by_the_grad_scaler_is_not_seen():
    torch.manual_seed(3)
    net = Net()
    opt = adamw(net)
    w = Watch(net, opt)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for k, (x, y) in enumerate(batches(3)):
        opt.zero_grad()
        loss = loss_of(net, x, y) * (math.inf if k == 1 else 1.0)  # step 2 overflows
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if k == 0:
            first = {n: dict(v) for n, v in w.last.items()}
        if k == 1:
            assert w.last == first and w._t == 1  # the skipped step is not recorded
    assert w._t == 2 and float(opt.state[net.fc.weight]["step"]) == 2
    assert w.last["fc.weight"]["step"] == 2


def test_remove_detaches_the_hooks():
    net, opt, w, _ = run(adamw, steps=1)
    w.remove()
    before = w.last
    x, y = next(batches(1))
    loss_of(net, x, y).backward()
    opt.step()
    assert w.last is before and w._t == 1


def test_compiled_model_names_are_the_uncompiled_names():
    torch.manual_seed(3)
    net = Net().double()
    compiled = torch.compile(net, backend="eager")  # named_parameters gives "_orig_mod.*"
    assert any(n.startswith("_orig_mod.") for n, _ in compiled.named_parameters())
    opt = adamw(net)
    w = Watch(compiled, opt)
    x, y = next(batches(1))
    loss_of(net, x, y).backward()
    opt.step()
    assert set(w.last) == {n for n, p in net.named_parameters(remove_duplicate=False) if p.requires_grad}


def test_chunked_sums_span_several_chunks():
    # a tensor longer than one chunk: the sums add across chunk boundaries
    torch.manual_seed(0)
    lin = torch.nn.Linear(_CHUNK // 64 + 7, 130, bias=False).double()
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    w = Watch(lin, opt)
    assert lin.weight.numel() > 4 * w._chunk  # several chunks, the last one partial
    assert lin.weight.numel() % w._chunk
    before = lin.weight.detach().clone()
    lin(torch.randn(3, lin.in_features, dtype=torch.float64)).sum().backward()
    opt.step()
    ref, _ = adam_reference(lin.weight, opt.param_groups[0], opt.state[lin.weight], lin.weight.grad, before,
                            lin.weight)
    check(w.last["weight"], ref)


# ---------------------------------------------------------------- outputs


def test_scalars_and_the_log_without_nan_tokens(tmp_path):
    path = tmp_path / "run.jsonl"
    torch.manual_seed(3)
    net = Net().double()
    opt = adamw(net)
    w = Watch(net, opt, every=2, log=path)
    for x, y in batches(6):
        opt.zero_grad()
        loss_of(net, x, y).backward()
        opt.step()
        if w._t == 2:
            flat = w.scalars("train")
            assert flat["train/fc.weight/update_rms"] == w.last["fc.weight"]["update_rms"]
            assert len(flat) == len(w.last) * len(report.FIELDS)
    w.remove()
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["optstats"] == report.LOG_FORMAT and [r["step"] for r in lines[1:]] == [2, 4, 6]
    assert lines[-1]["tensors"]["fc.weight"] == w.last["fc.weight"]
    # the schedule of every step, in pieces since the previous record
    assert [len(r["lr"][0]) for r in lines[1:]] == [2, 2, 2]
    # the log gives back the in-memory summary
    header, steps, values, lr, wd = report.read_log(path)
    assert report.summarize(header, steps, values, lr, wd).rows == w.summary().rows


def test_first_step_of_a_zero_bias_is_null_in_the_log(tmp_path):
    path = tmp_path / "run.jsonl"
    torch.manual_seed(3)
    net = Net().double()
    torch.nn.init.zeros_(net.fc.bias)
    opt = adamw(net)
    Watch(net, opt, log=path)
    x, y = next(batches(1))
    loss_of(net, x, y).backward()
    opt.step()
    rec = json.loads(path.read_text().splitlines()[1])["tensors"]["fc.bias"]
    assert rec["angle"] is None and rec["cos_theta_u"] is None and rec["update_rms"] > 0


# ---------------------------------------------------------------- the report


def test_report_predictions_are_the_theory_functions():
    torch.manual_seed(3)
    net = Net().double()
    groups = [{"params": [net.fc.weight, net.proj.weight, net.embed.weight], "weight_decay": 0.5},
              {"params": [net.fc.bias] + list(net.norm.parameters()), "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=0.05, betas=(0.9, 0.95), eps=1e-8)
    w = Watch(net, opt)
    lrs = np.linspace(0.05, 0.03, 40)
    initial = {n: float(p.detach().pow(2).mean().sqrt()) for n, p in net.named_parameters()}
    for k, (x, y) in enumerate(batches(40)):
        for group in opt.param_groups:
            group["lr"] = float(lrs[k])
        opt.zero_grad()
        loss_of(net, x, y).backward()
        opt.step()
    summary = w.summary(start=21)
    rows = {r["name"]: r for r in summary.rows}
    r = rows["fc.weight"]
    assert r["window"] == (21, 40) and r["records"] == 20
    steps = np.arange(21, 41)
    lr_w = lrs[steps - 1]
    eps_over = 1e-8 / r["sqrt_vhat_rms"]
    assert r["update_rms_predicted"] == pytest.approx(
        float(theory.adam_update_rms(0.9, 0.95, method="exact", eps_over_sigma=eps_over)), rel=1e-12)
    wrms = theory.weight_rms_schedule(lrs, 0.5, theta0_rms=initial["fc.weight"], method="sum")
    assert r["weight_rms_predicted"] == pytest.approx(wrms[steps - 1].mean(), rel=1e-12)
    u_mf = float(theory.adam_update_rms(0.9))
    w_eq = theory.adamw_weight_rms(lr_w, 0.5, beta1=0.9, method="exact-sums")
    cos = theory.cos_theta_u(lr_w, 0.5, u_mf, w_eq)
    assert r["cos_theta_u_predicted"] == pytest.approx(cos.mean(), rel=1e-12)
    assert r["angle_predicted"] == pytest.approx(theory.angular_update(lr_w, 0.5, u_mf, w_eq, cos).mean(), rel=1e-12)
    assert r["memories"] == pytest.approx(0.5 * lrs.sum(), rel=1e-12) and r["equilibrium"] is False
    assert any("not yet in equilibrium" in note for note in r["notes"])
    # measured: the window's mean of the records, its stderr from 10 batch means
    ups = np.array([v[list(w.names).index("fc.weight"), 0] for v in w._values[20:]])
    assert r["update_rms"] == pytest.approx(ups.mean(), rel=1e-12)
    assert r["update_rms_stderr"] == pytest.approx(ups.reshape(10, 2).mean(1).std(ddof=1) / np.sqrt(10), rel=1e-9)
    assert r["update_rms_relative_difference"] == pytest.approx(r["update_rms"] / r["update_rms_predicted"] - 1)
    snr = theory.snr_from_update_rms(r["update_rms"], 0.9, 0.95, method="exact") if r["snr_readback"] else None
    assert r["snr_readback"] == snr
    # undecayed: the update RMS only, and a note
    b = rows["fc.bias"]
    assert b["update_rms_predicted"] is not None and b["weight_rms_predicted"] is None
    assert b["memories"] is None and any("undecayed" in note for note in b["notes"])
    table = summary.to_markdown()
    assert "| fc.weight |" in table and "undecayed" in table and "read-back" in table


@pytest.mark.parametrize("nesterov, adjust_lr_fn", [(True, None), (False, "match_rms_adamw"), (True, "original")])
def test_report_muon_predictions_are_the_theory_functions(tmp_path, nesterov, adjust_lr_fn):
    # torch.optim.Muon with a decaying lr and momentum 0.9 (not torch's 0.95: the header's value is used)
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(6, 10, bias=False), torch.nn.Tanh(),
                              torch.nn.Linear(10, 4, bias=False)).double()
    opt = torch.optim.Muon(net.parameters(), lr=0.02, weight_decay=0.1, momentum=0.9, nesterov=nesterov,
                           adjust_lr_fn=adjust_lr_fn)
    path = tmp_path / "muon.jsonl"
    w = Watch(net, opt, log=path)
    lrs = np.linspace(0.02, 0.01, 8)
    gen = torch.Generator().manual_seed(6)
    for k in range(8):
        opt.param_groups[0]["lr"] = float(lrs[k])
        opt.zero_grad()
        net(torch.randn(8, 6, generator=gen, dtype=torch.float64)).pow(2).mean().backward()
        opt.step()
    rows = {r["name"]: r for r in w.summary(start=5).rows}
    lr_w, wd = lrs[4:], 0.1  # the records at steps 5..8
    for name, p in net.named_parameters():
        shape, r = tuple(p.shape), rows[name]
        # torch's convention: decay by lr wd, step by the adjusted lr (the book's eta = lr_adj, lambda = lr wd / eta)
        eta = theory.torch_muon_lr(lr_w, shape, adjust_lr_fn)
        lam = lr_w * wd / eta
        u = theory.muon_update_rms(shape)
        weight = theory.torch_muon_weight_rms(lr_w, wd, 0.9, shape, nesterov=nesterov, adjust_lr_fn=adjust_lr_fn)
        cos = theory.cos_theta_u(eta, lam, u, weight)
        angle = theory.muon_angular_update(eta, lam, 0.9, shape, nesterov=nesterov)
        assert r["update_rms_predicted"] == float(u)
        assert r["weight_rms_predicted"] == pytest.approx(weight.mean(), rel=1e-12)
        assert r["cos_theta_u_predicted"] == pytest.approx(cos.mean(), rel=1e-12)
        assert r["angle_predicted"] == pytest.approx(angle.mean(), rel=1e-12)
        assert f"nesterov={nesterov}" in r["weight_rms_theory"]
        # the angle from the same balance by the generic function (eq. ba-angle, U and W cancel)
        assert r["angle_predicted"] == pytest.approx(
            theory.angular_update(eta, lam, u, weight, cos).mean(), rel=1e-9)
        # the flag is honoured: the other momentum kind is another number
        other = theory.torch_muon_weight_rms(lr_w, wd, 0.9, shape, nesterov=not nesterov, adjust_lr_fn=adjust_lr_fn)
        assert abs(other.mean() / r["weight_rms_predicted"] - 1) > 0.01
    # off on request: the update RMS only, and a note
    off = {r["name"]: r for r in w.summary(start=5, muon_law=False).rows}
    for r in off.values():
        assert r["update_rms_predicted"] is not None and r["weight_rms_predicted"] is None
        assert r["angle_predicted"] is None and any("muon_law=False" in n for n in r["notes"])
    # the log (optstats report) gives the same rows as the watch in memory
    assert report.summarize(*report.read_log(path), start=5).rows == w.summary(start=5).rows


def test_report_refuses_a_muon_log_without_torch_settings(tmp_path):
    # a header without nesterov/adjust_lr_fn cannot say which law applies: a clear error, no default
    net, opt, w, _ = muon_run(True, None, steps=2)
    path = tmp_path / "muon.jsonl"
    w2 = Watch(net, opt, log=path)
    x = torch.randn(8, 6, dtype=torch.float64)
    opt.zero_grad()
    net(x).pow(2).mean().backward()
    opt.step()
    lines = path.read_text().splitlines()
    for key, bad in (("nesterov", None), ("adjust_lr_fn", None), ("momentum", None), ("adjust_lr_fn", "sqrt")):
        header = json.loads(lines[0])
        if bad is None:
            del header["groups"][0][key]
        else:
            header["groups"][0][key] = bad
        broken = tmp_path / f"{key}.jsonl"
        broken.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
        with pytest.raises(report.LogError, match=f"param group 0: .*{key}"):
            report.read_log(broken)
    w2.remove()


def test_summary_bad_start():
    net, opt, w, _ = run(adamw, steps=4)
    for start in (0, 5, 2.5):
        with pytest.raises(ValueError, match="start must"):
            w.summary(start=start)
    fresh = Watch(net, adamw(net), every=100)
    with pytest.raises(ValueError, match="no record yet"):
        fresh.summary()


# ---------------------------------------------------------------- FSDP2

FSDP_SCRIPT = r"""
import os, sys, json, torch, torch.distributed as dist
from optstats.probe import Watch
rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.set_num_threads(1)
if world > 1:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from torch.distributed.fsdp import fully_shard
gen = torch.Generator().manual_seed(1)
data = [(torch.randn(8, 6, generator=gen, dtype=torch.float64), torch.randn(8, 5, generator=gen,
         dtype=torch.float64)) for _ in range(4)]
result = {}
for kind in ("adamw", "muon"):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 9, bias=kind == "adamw"), torch.nn.ReLU(),
                              torch.nn.Linear(9, 5, bias=False)).double()
    if world > 1:
        for layer in (net[0], net[2]):
            fully_shard(layer)
        fully_shard(net)
    if kind == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.1)
    else:
        opt = torch.optim.Muon(net.parameters(), lr=0.02, weight_decay=0.1)
    w = Watch(net, opt, every=2)
    full = lambda p: p.full_tensor() if hasattr(p, "full_tensor") else p.detach()
    for x, y in data:  # the same full batch on every rank: the same gradients as one process
        before = [full(p).clone() for p in net.parameters()]
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    # Muon: the watch's fields at the last step (a record step) by hand, from
    # this same run's gathered state (weights before and after, gradient,
    # torch's momentum_buffer) and torch's rule theta_t = (1 - lr wd) theta_{t-1}
    # - lr_adj O_t, lr_adj = lr sqrt(max(1, A/B)) (adjust_lr_fn None)
    hand = {}
    for (name, p), b in zip(net.named_parameters(), before):
        if kind != "muon":
            break
        a, g = full(p).flatten(), full(p.grad).flatten()
        m, b = full(opt.state[p]["momentum_buffer"]).flatten(), b.flatten()
        o = ((1 - 0.02 * 0.1) * b - a) / (0.02 * max(1, p.shape[0] / p.shape[1]) ** 0.5)
        d = a - b  # the step: |b ^ a| = |b ^ d|, no cancellation at a small angle
        wedge = (b.dot(b) * d.dot(d) - b.dot(d) ** 2).sqrt()
        hand[name] = {"update_rms": o.pow(2).mean().sqrt().item(), "weight_rms": a.pow(2).mean().sqrt().item(),
                      "momentum_ratio": (m.norm() / g.norm()).item(), "grad_norm": g.norm().item(),
                      "cos_theta_u": (b.dot(o) / (b.norm() * o.norm())).item(),
                      "angle": torch.atan2(wedge, b.dot(a)).item()}
    result[kind] = {"last": w.last, "initial": [t["initial_weight_rms"] for t in w._header["tensors"]],
                    "hand": hand}
if rank == 0:
    with open(out, "w") as handle:
        json.dump(result, handle)
if world > 1:
    dist.destroy_process_group()
"""


def test_fsdp2_matches_one_process(tmp_path, monkeypatch):
    import runpy
    import socket

    script = tmp_path / "fsdp.py"
    script.write_text(FSDP_SCRIPT)
    one = tmp_path / "one.json"
    # the unsharded reference in this process (no torch.distributed)
    monkeypatch.setattr(sys, "argv", [str(script), "0", "1", "0", str(one)])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    two = tmp_path / "two.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", port, str(two)], env=env,
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=120)  # ~15 s on an idle machine
        assert p.returncode == 0, err[-2000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    # Muon: every field of the watch (per-shard sums, one all_reduce) against
    # the hand computation from the same run's gathered state, in the sharded
    # run and in one process. Both sides take O_t entrywise from the float64
    # weights by the same formula and differ only in the order of <= 90
    # float64 products (relative ~1e-15); cos and the angle have no
    # cancellation here (|cos| > 0.05, the wedge from the step d): 1e-12.
    # (Across the two runs torch's Muon is not compared: its bf16 Newton-Schulz
    # on DTensors reorders the products, which changes the training by ~1%.)
    for run_ in (a, b):
        got, want = run_["muon"]["last"], run_["muon"]["hand"]
        assert set(want) == {"0.weight", "2.weight"} and set(got) == set(want)
        for name in want:
            assert abs(want[name]["cos_theta_u"]) > 0.05
            for field, value in want[name].items():
                assert got[name][field] == pytest.approx(value, rel=1e-12), (name, field)
    # AdamW: the same numbers as one process.
    for kind in ("adamw",):
        got, want = b[kind]["last"], a[kind]["last"]
        assert set(got) == set(want) and len(want) == 3
        for name in want:
            for field, value in want[name].items():
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    assert got[name][field] is None or math.isnan(got[name][field])
                    continue
                # the sharded run sums the same products in another order and
                # its gradient reduction divides by the world size: float64
                # rounding, ~1e-15, amplified at most 1e3 by the angle
                assert got[name][field] == pytest.approx(value, rel=1e-10, abs=1e-13), (kind, name, field)
    for kind in ("adamw", "muon"):
        assert b[kind]["initial"] == pytest.approx(a[kind]["initial"], rel=1e-12)
