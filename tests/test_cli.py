"""The ``optstats`` command, run as a user runs it: in a subprocess.

JSON fields against the package's own functions (the command must not
compute anything the package does not), exit status 2 with one line naming
the flag, its value and the allowed range for bad input, and ``--help`` for
every subcommand."""

import importlib.metadata
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optstats import schedules, theory

COMMAND = [sys.executable, "-m", "optstats"]


def run(*args):
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=120)


def refuse_constant(text):
    raise AssertionError(f"JSON holds {text}, which is not JSON (strict parsers reject it)")


def answer(*args):
    done = run(*args, "--json")
    assert done.returncode == 0, done.stderr
    # strict JSON: NaN or Infinity would raise here
    return json.loads(done.stdout, parse_constant=refuse_constant)


def table_notes(stdout):
    """The notes of a table, each unwrapped onto one line."""
    notes = []
    for line in stdout.splitlines():
        if line.startswith("  note: "):
            notes.append(line[len("  note: "):])
        elif line.startswith(" " * 8) and notes:
            notes[-1] += " " + line.strip()
    return notes


def test_console_script_is_installed_and_matches_python_m():
    script = Path(sys.executable).parent / "optstats"
    done = subprocess.run([script, "update-rms", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == answer("update-rms")


def test_update_rms_fields():
    out = answer("update-rms", "--beta1", 0.8, "--beta2", 0.99, "--snr", 0.1)
    for key, method in [("exact", "exact"), ("second_order", "second-order"), ("mean_field", "mean-field")]:
        assert out[key] == pytest.approx(float(theory.adam_update_rms(0.8, 0.99, 0.1, method=method)), rel=1e-12)
    eps = answer("update-rms", "--eps-over-sigma", 0.5)
    assert eps["exact"] == pytest.approx(
        float(theory.adam_update_rms(0.9, 0.95, method="exact", eps_over_sigma=0.5)), rel=1e-12)
    assert any("not exact" in note for note in eps["notes"])


def test_snr_fields():
    out = answer("snr", "--update-rms", 0.3, "--beta1", 0.9, "--beta2", 0.95)
    assert out["snr"] == pytest.approx(theory.snr_from_update_rms(0.3, 0.9, 0.95, method="exact"), rel=1e-12)
    assert out["snr_mean_field"] == pytest.approx(float(theory.snr_from_update_rms(0.3, 0.9)), rel=1e-12)
    # the exact inversion reproduces the RMS it was given
    assert float(theory.adam_update_rms(0.9, 0.95, out["snr"], method="exact")) == pytest.approx(0.3, rel=1e-9)
    mom = answer("snr", "--momentum-ratio", 0.5, "--beta1", 0.9)
    assert mom["snr"] == pytest.approx(float(theory.snr_from_momentum_ratio(0.5, 0.9)), rel=1e-12)
    # below the pure-noise floor: no exact SNR, said in a note, exit 0
    low = answer("snr", "--update-rms", 0.2)
    assert low["snr"] is None and any("below" in note for note in low["notes"])


def test_muon_scale_fields():
    out = answer("muon-scale", "--shape", 1024, 4096, "--beta1", 0.95, "--beta2", 0.95)
    assert out["scale"] == pytest.approx(float(theory.adam_matching_scale(0.95, 0.95, (1024, 4096))), rel=1e-12)
    assert out["adam_update_rms"] == pytest.approx(float(theory.adam_update_rms(0.95, 0.95, method="exact")))
    assert out["muon_update_rms"] == pytest.approx(1 / 64)
    # Moonlight's 0.2 sqrt(max(n, m)) gives an update RMS of exactly 0.2
    assert out["moonlight"]["update_rms"] == pytest.approx(0.2, rel=1e-12)
    assert out["keller_jordan"]["factor"] == pytest.approx(1.0)  # fan-out < fan-in
    # NeMo's names mean what NeMo's get_muon_scale_factor computes
    assert out["nemo_unit_rms_norm"]["factor"] == pytest.approx(0.5)
    assert out["nemo_spectral"]["factor"] == pytest.approx(64.0)
    assert out["torch_match_rms_adamw"]["factor"] == pytest.approx(out["moonlight"]["factor"])
    # keras's kernel is (fan-in, fan-out): its max(1, shape[0]/shape[1]) is fan-in / fan-out here
    assert out["keras"]["factor"] == pytest.approx(2.0) and out["optax"]["factor"] == pytest.approx(1.0)
    one = answer("muon-scale", "--shape", 8, 2, "--convention", "keller-jordan")
    assert one["keller_jordan"]["factor"] == pytest.approx(2.0) and "moonlight" not in one


def test_muon_scale_adam_lr():
    out = answer("muon-scale", "--shape", 1024, 4096, "--adam-lr", 3e-4, "--wd", 0.1)
    adam = out["adam_update_rms"]
    for name in ("moonlight", "keller_jordan", "nemo_spectral"):
        entry = out[name]
        # lr * factor * msign has the RMS of AdamW's step at 3e-4
        assert entry["lr_same_update_rms"] * entry["update_rms"] == pytest.approx(3e-4 * adam, rel=1e-12)
    # the same angle per step as AdamW (3e-4, 0.1), Muon with Nesterov: one lr for all conventions
    lr = out["lr_same_angular_update"]
    adam_w = theory.adamw_weight_rms(3e-4, 0.1, beta1=0.9, method="exact-sums")
    target = theory.angular_update(3e-4, 0.1, adam, adam_w, theory.cos_theta_u(3e-4, 0.1, adam, adam_w))
    got = theory.muon_angular_update(lr, 0.1, 0.9, (1024, 4096), nesterov=True)
    assert got == pytest.approx(target, rel=1e-9)


def test_muon_scale_conv_shapes():
    # Keller Jordan's muon_update flattens (out, in, kh, kw) to (out, in kh kw) and takes
    # its factor from the last two sizes of the 4-D gradient (kh / kw)
    out = answer("muon-scale", "--shape", 64, 32, 3, 3)
    assert out["muon_update_rms"] == pytest.approx(1 / np.sqrt(288))
    assert out["keller_jordan"]["factor"] == 1.0 and "moonlight" not in out
    done = run("muon-scale", "--shape", 64, 32, 3, 3, "--convention", "torch-original")
    assert done.returncode == 2 and "p.ndim != 2" in done.stderr and len(done.stderr.splitlines()) == 1


def test_weight_rms_adamw_schedule_fields():
    out = answer("weight-rms", "--lr", 3e-4, "--wd", 0.1, "--schedule", "cosine", "--floor", 0.1,
                 "--steps", 20000, "--theta0-rms", 0.02, "--steps-per-epoch", 1000)
    lr_t = schedules.cosine(20000, 3e-4, 3e-5)
    final = theory.weight_rms_schedule(lr_t, 0.1, theta0_rms=0.02, method="kernel", beta1=0.9)[-1]
    assert out["final_rms"] == pytest.approx(float(final), rel=1e-12)
    assert out["stationary_rms"] == pytest.approx(float(theory.adamw_weight_rms(3e-4, 0.1, method="exact-sums")))
    assert out["stationary_rms_mean_field"] == pytest.approx(np.sqrt(3e-4 / 0.2), rel=1e-12)
    assert out["timescale_steps"] == pytest.approx(1 / 3e-5)
    assert out["timescale_epochs"] == pytest.approx(1 / 3e-5 / 1000)
    assert out["angular_update_mean_field"] == pytest.approx(np.sqrt(2 * 3e-5 * 0.1 / 1.9), rel=1e-12)


@pytest.mark.parametrize(
    "extra, stationary",
    [
        (["--optimizer", "lion"], lambda: theory.lion_weight_rms(1e-3, 1.0, 0.9, 0.99)),
        (["--optimizer", "signsgdm", "--beta1", 0.5],
         lambda: theory.signsgdmw_weight_rms(1e-3, 1.0, 0.5, method="arcsine")),
        # muon's momentum defaults to torch.optim.Muon's 0.95 (test_weight_rms_muon_momentum_default)
        (["--optimizer", "muon", "--shape", 16, 16],
         lambda: theory.muon_weight_rms(1e-3, 1.0, 0.95, (16, 16), nesterov=True)),
        (["--optimizer", "muon", "--shape", 16, 16, "--no-nesterov", "--beta1", 0.9],
         lambda: theory.muon_weight_rms(1e-3, 1.0, 0.9, (16, 16))),
        # torch's convention: decay by lr wd, step by 0.2 sqrt(64) lr
        (["--optimizer", "muon", "--shape", 16, 64, "--adjust-lr-fn", "match_rms_adamw"],
         lambda: theory.torch_muon_weight_rms(1e-3, 1.0, 0.95, (16, 64), adjust_lr_fn="match_rms_adamw")),
    ],
)
def test_weight_rms_other_optimizers(extra, stationary):
    out = answer("weight-rms", "--lr", 1e-3, "--wd", 1.0, "--steps", 3000, "--theta0-rms", 0.05, *extra)
    w = float(stationary())
    assert out["stationary_rms"] == pytest.approx(w, rel=1e-12)
    keep = (1 - 1e-3) ** 6000
    assert out["final_rms"] == pytest.approx(np.sqrt(keep * 0.05**2 + (1 - keep) * w**2), rel=1e-12)
    assert 0 < out["angular_update"] < 0.1
    if "lion" in extra:
        assert out["stationary_rms_kosson"] == pytest.approx(
            float(theory.lion_weight_rms(1e-3, 1.0, 0.9, 0.99, method="kosson")), rel=1e-12)


def test_weight_rms_muon_momentum_default():
    # --optimizer muon models torch.optim.Muon, so its momentum defaults to torch's (read from torch's
    # signature, not typed), with or without Nesterov; the other optimizers keep beta1 = 0.9
    torch = pytest.importorskip("torch")
    momentum = inspect.signature(torch.optim.Muon).parameters["momentum"].default
    base = ["weight-rms", "--lr", 1e-3, "--wd", 1.0, "--optimizer", "muon", "--shape", 16, 64]
    for nesterov in ("--nesterov", "--no-nesterov"):
        default = answer(*base, nesterov)["stationary_rms"]
        assert default == answer(*base, nesterov, "--beta1", momentum)["stationary_rms"]
        assert default != answer(*base, nesterov, "--beta1", 0.9)["stationary_rms"]
        assert default == pytest.approx(float(theory.torch_muon_weight_rms(
            1e-3, 1.0, momentum, (16, 64), nesterov=nesterov == "--nesterov")), rel=1e-12)
    adamw = answer("weight-rms", "--lr", 1e-3, "--wd", 1.0)["stationary_rms"]
    assert adamw == answer("weight-rms", "--lr", 1e-3, "--wd", 1.0, "--beta1", 0.9)["stationary_rms"]


def test_wd_convert_fields():
    out = answer("wd-convert", "--lr", 1e-3, "--wd", 0.1, "--from", "pytorch", "--to", "independent")
    assert out["wd"] == pytest.approx(1e-4) and out["timescale_steps"] == pytest.approx(1e4)
    back = answer("wd-convert", "--lr", 1e-3, "--wd", 1e-4, "--from", "independent", "--to", "pytorch")
    assert back["wd"] == pytest.approx(0.1)
    # AdamC at half the peak scales wd by 1/2, so the same decay needs twice the wd
    c = answer("wd-convert", "--lr", 1e-3, "--wd", 0.1, "--from", "pytorch", "--to", "adamc", "--peak-lr", 2e-3)
    assert c["wd"] == pytest.approx(0.2) and c["decay_per_step"] == pytest.approx(1e-4)


# ---------------------------------------------------------------- issue 29: no flag ignored


def test_version_is_the_package_version():
    import optstats

    done = run("--version")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.strip() == f"optstats {importlib.metadata.version('optstats')}"
    assert optstats.__version__ == importlib.metadata.version("optstats")


def warmed(steps, warmup, after):
    """The warmup as wsd's (lr s / warmup up to step warmup - 1), then ``after`` from the peak."""
    ramp = 3e-4 * np.arange(1, warmup) / warmup
    return np.concatenate([ramp, after(steps - warmup + 1)])


@pytest.mark.parametrize("schedule, after", [
    ("cosine", lambda n: schedules.cosine(n, 3e-4, 3e-5)),
    ("linear", lambda n: schedules.linear(n, 3e-4, 3e-5)),
    ("constant", lambda n: schedules.constant(n, 3e-4)),
])
def test_weight_rms_warmup_is_honoured_by_every_schedule(schedule, after):
    floor = [] if schedule == "constant" else ["--floor", 0.1]
    common = ["weight-rms", "--lr", 3e-4, "--wd", 0.1, "--schedule", schedule, *floor, "--steps", 20000,
              "--theta0-rms", 0.02]
    out = answer(*common, "--warmup", 2000)
    lr_t = warmed(20000, 2000, after)
    final = theory.weight_rms_schedule(lr_t, 0.1, theta0_rms=0.02, method="kernel", beta1=0.9)[-1]
    assert out["final_rms"] == pytest.approx(float(final), rel=1e-12)
    # the warmup changes the answer (the review's trap: it was identical without it)
    assert out["final_rms"] != answer(*common)["final_rms"]
    if schedule == "linear":
        # a linear decay after the warmup is wsd with the decay from the warmup's end
        wsd = schedules.wsd(20000, 3e-4, 2000, 2000, 3e-5)
        np.testing.assert_allclose(lr_t, wsd, rtol=1e-12)  # two constructions of one schedule: rounding only
    # --warmup 0 and 1 are both "the peak at step 1"
    assert answer(*common, "--warmup", 1)["final_rms"] == answer(*common, "--warmup", 0)["final_rms"]


def test_weight_rms_wd_conventions_against_the_theory():
    lr, wd, steps = 3e-4, 0.1, 30000
    lr_t = schedules.cosine(steps, lr, lr * 0.1)
    base = ["weight-rms", "--lr", lr, "--schedule", "cosine", "--floor", 0.1, "--steps", steps,
            "--theta0-rms", 0.02]

    def final(wd_t):  # PyTorch's wd per step, the theory's own argument
        return float(theory.weight_rms_schedule(lr_t, wd_t, theta0_rms=0.02, method="kernel", beta1=0.9)[-1])

    # AdamC: wd_t = wd lr_t / peak in PyTorch's form, so the equilibrium sqrt(lr_t / 2 wd_t) holds
    adamc = answer(*base, "--wd", wd, "--wd-convention", "adamc")
    assert adamc["final_rms"] == pytest.approx(final(wd * lr_t / lr), rel=1e-12)
    pytorch = answer(*base, "--wd", wd)
    assert adamc["stationary_rms"] == pytest.approx(pytorch["stationary_rms"], rel=1e-12)
    assert adamc["final_rms"] > pytorch["final_rms"]  # it holds the level the constant wd loses
    # Loshchilov-Hutter: decay (lr_t / peak) wd per step, PyTorch's wd / peak at every step
    lh = answer(*base, "--wd", 1e-4, "--wd-convention", "lh")
    assert lh["final_rms"] == pytest.approx(final(np.full(steps, 1e-4 / lr)), rel=1e-12)
    # independent: decay wd at every step, PyTorch's wd / lr_t (finite: the floor keeps lr_t > 0)
    ind = answer(*base, "--wd", 1e-4, "--wd-convention", "independent")
    assert ind["final_rms"] == pytest.approx(final(1e-4 / lr_t), rel=1e-12)
    for out in (lh, ind):  # at the peak both decay by wd
        assert out["stationary_rms"] == pytest.approx(
            float(theory.adamw_weight_rms(lr, 1e-4 / lr, method="exact-sums")), rel=1e-12)
        assert out["timescale_steps"] == pytest.approx(1e4, rel=1e-12)
        assert out["relaxation_time_steps"] == pytest.approx(float(theory.relaxation_time(lr, 1e-4 / lr)),
                                                             rel=1e-12)
    # independent down to lr_t = 0 (no finite PyTorch wd there): the decay enters as such
    zero = answer("weight-rms", "--lr", lr, "--wd", 1e-4, "--wd-convention", "independent", "--schedule",
                  "cosine", "--steps", steps, "--theta0-rms", 0.02)
    lr_0 = schedules.cosine(steps, lr, 0.0)
    want = theory.weight_rms_schedule(lr_0, decay=1e-4, theta0_rms=0.02, method="kernel", beta1=0.9)[-1]
    assert zero["final_rms"] == pytest.approx(float(want), rel=1e-12)
    assert any("independent: theta <- theta - lr_t u - wd theta" in n for n in zero["notes"])


@pytest.mark.parametrize("extra, stationary", [
    (["--optimizer", "lion"], lambda: theory.lion_weight_rms(1e-3, 1e-4 / 1e-3, 0.9, 0.99)),
    (["--optimizer", "signsgdm"], lambda: theory.signsgdmw_weight_rms(1e-3, 1e-4 / 1e-3, 0.9, method="arcsine")),
    (["--optimizer", "muon", "--shape", 16, 64],
     lambda: theory.torch_muon_weight_rms(1e-3, 1e-4 / 1e-3, 0.95, (16, 64))),  # muon's default momentum
])
def test_weight_rms_independent_decay_for_other_optimizers(extra, stationary):
    out = answer("weight-rms", "--lr", 1e-3, "--wd", 1e-4, "--wd-convention", "independent", *extra)
    assert out["stationary_rms"] == pytest.approx(float(stationary()), rel=1e-12)
    assert out["timescale_steps"] == pytest.approx(1e4, rel=1e-12)


def test_wd_convert_lh_and_refused_peak_lr():
    # LH decays by (lr / peak) wd: PyTorch's 0.1 at lr 1e-4 (decay 1e-5) is LH's 1e-5 / (1e-4 / 1e-3)
    out = answer("wd-convert", "--lr", 1e-4, "--wd", 0.1, "--from", "pytorch", "--to", "lh", "--peak-lr", 1e-3)
    assert out["wd"] == pytest.approx(1e-4 * 0.1 / (1e-4 / 1e-3), rel=1e-12)
    back = answer("wd-convert", "--lr", 1e-4, "--wd", out["wd"], "--from", "lh", "--to", "pytorch",
                  "--peak-lr", 1e-3)
    assert back["wd"] == pytest.approx(0.1, rel=1e-12) and back["decay_per_step"] == pytest.approx(1e-5)
    # wd-convert and weight-rms read a convention the same way: one memory at the peak
    rms = answer("weight-rms", "--lr", 1e-3, "--wd", out["wd"], "--wd-convention", "lh")
    at_peak = answer("wd-convert", "--lr", 1e-3, "--wd", out["wd"], "--from", "lh", "--to", "pytorch")
    assert rms["timescale_steps"] == pytest.approx(at_peak["timescale_steps"], rel=1e-12)
    zero = answer("wd-convert", "--lr", 1e-3, "--wd", 0, "--from", "pytorch", "--to", "independent")
    assert zero["wd"] == 0 and zero["timescale_steps"] is None
    assert any(n.startswith("timescale_steps n/a") for n in zero["notes"])


def test_update_rms_from_eps_and_exp_avg_sq():
    eps, v, snr = 1e-8, 4e-14, 0.3
    out = answer("update-rms", "--eps", eps, "--exp-avg-sq", v, "--snr", snr, "--beta2", 0.99)
    sigma = float(theory.noise_std_from_exp_avg_sq(v, snr))
    assert out["sigma"] == pytest.approx(sigma, rel=1e-12)
    assert out["eps_over_sigma"] == pytest.approx(eps / sigma, rel=1e-12)
    for key, method in [("exact", "exact"), ("second_order", "second-order"), ("mean_field", "mean-field")]:
        assert out[key] == pytest.approx(float(theory.adam_update_rms(
            0.9, 0.99, snr, method=method, eps_over_sigma=eps / sigma)), rel=1e-12)
    # the same answer as --eps-over-sigma with that ratio
    same = answer("update-rms", "--eps-over-sigma", repr(eps / sigma), "--snr", snr, "--beta2", 0.99)
    assert same["exact"] == pytest.approx(out["exact"], rel=1e-12)
    assert any("bias correction has faded" in n for n in out["notes"])


def test_snr_below_the_noise_floor_is_said_the_same_way_everywhere():
    cases = [
        (["snr", "--update-rms", 0.2], ["snr", "snr_mean_field"]),
        # between the exact floor (0.2261) and the mean field's (0.2294): only the mean field has none
        (["snr", "--update-rms", 0.228], ["snr_mean_field"]),
        (["snr", "--momentum-ratio", 0.1], ["snr"]),
    ]
    for argv, missing in cases:
        out = answer(*argv)
        table = run(*argv)
        assert table.returncode == 0
        for key in missing:
            assert out[key] is None
            note = next(n for n in out["notes"] if n.startswith(f"{key} n/a:"))
            assert "is below" in note and "which no SNR gives" in note
            assert f"{key:28s} n/a" in table.stdout
        # the table says what the JSON says, note for note
        assert table_notes(table.stdout) == out["notes"]
    exact = answer("snr", "--update-rms", 0.228)
    assert exact["snr"] == pytest.approx(theory.snr_from_update_rms(0.228, 0.9, 0.95, method="exact"), rel=1e-12)
    assert exact["noise_floor"] == pytest.approx(float(theory.adam_update_rms(0.9, 0.95, method="exact")))
    assert exact["noise_floor_mean_field"] == pytest.approx(float(theory.adam_update_rms(0.9)), rel=1e-12)
    # the floors are where the theory's own estimates cross zero
    assert theory.snr_from_update_rms(exact["noise_floor_mean_field"], 0.9) == pytest.approx(0, abs=1e-15)
    mom = answer("snr", "--momentum-ratio", 0.1, "--beta1", 0.8)
    assert mom["noise_floor"] == pytest.approx(float(np.sqrt(theory.ema_variance(0.8))), rel=1e-12)
    assert theory.snr_from_momentum_ratio(mom["noise_floor"], 0.8) == pytest.approx(0, abs=1e-15)
    assert theory.snr_from_momentum_ratio(0.1, 0.8) < 0  # what used to be printed as an SNR


@pytest.mark.parametrize("argv, key", [
    (["update-rms", "--snr", "1e300"], "second_order"),
    (["wd-convert", "--lr", "1e-3", "--wd", "0", "--from", "pytorch", "--to", "adamc"], "timescale_steps"),
    (["snr", "--update-rms", "0.1"], "snr"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1"], "final_rms"),
])
def test_json_never_holds_nan_or_infinity(argv, key):
    out = answer(*argv)  # parse_constant raises on NaN, Infinity, -Infinity
    assert out[key] is None
    assert any(n.startswith(f"{key} n/a") for n in out["notes"])
    table = run(*argv)
    assert table.returncode == 0 and table.stderr == ""  # no RuntimeWarning either
    printed = [line.split()[-1].lower() for line in table.stdout.splitlines() if not line.startswith(" ")]
    assert not {"nan", "inf", "-inf"} & set(printed) and f"{key:28s} n/a" in table.stdout
    assert table_notes(table.stdout) == out["notes"]


BAD = [
    (["update-rms", "--beta1", "1.5"], "--beta1", "1.5"),
    (["update-rms", "--beta1", "-0.1"], "--beta1", "-0.1"),
    (["update-rms", "--beta2", "0"], "--beta2", "0"),
    (["update-rms", "--beta2", "abc"], "--beta2", "abc"),
    (["update-rms", "--snr", "-1"], "--snr", "-1"),
    (["update-rms", "--eps-over-sigma", "nan"], "--eps-over-sigma", "nan"),
    (["snr"], "--update-rms", None),
    (["snr", "--update-rms", "0.3", "--momentum-ratio", "0.3"], "--momentum-ratio", None),
    (["snr", "--update-rms", "1.2"], "--update-rms", "1.2"),
    (["muon-scale", "--shape", "0", "4"], "--shape", "0"),
    (["muon-scale", "--shape", "4"], "--shape", None),
    (["muon-scale", "--shape", "4", "2.5"], "--shape", "2.5"),
    (["muon-scale", "--shape", "4", "4", "--convention", "nope"], "--convention", "nope"),
    (["muon-scale", "--shape", "4", "4", "--convention", "spectral"], "--convention", "spectral"),
    (["muon-scale", "--shape", "4", "4", "4"], "--shape", "3"),
    (["muon-scale", "--shape", "4", "4", "--adam-lr", "0"], "--adam-lr", "0"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--optimizer", "muon", "--shape", "4", "4",
      "--adjust-lr-fn", "moonlight"], "--adjust-lr-fn", "moonlight"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--nesterov"], "--nesterov", None),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--optimizer", "muon", "--shape", "8", "4", "3", "3"],
      "--shape", "8 36"),
    (["weight-rms", "--wd", "0.1"], "--lr", None),
    (["weight-rms", "--lr", "-1e-3", "--wd", "0.1"], "--lr", "-1e-3"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0"], "--wd", "0"),
    (["weight-rms", "--lr", "1", "--wd", "2"], "--wd", "2"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--optimizer", "adam2"], "--optimizer", "adam2"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--schedule", "step"], "--schedule", "step"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--optimizer", "muon"], "--shape", None),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--optimizer", "lion", "--schedule", "cosine", "--steps", "9"],
     "--schedule", "cosine"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--schedule", "cosine"], "--steps", None),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--schedule", "wsd", "--steps", "100", "--decay-start", "100"],
     "--decay-start", "100"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--floor", "1.5"], "--floor", "1.5"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--steps", "0"], "--steps", "0"),
    (["weight-rms", "--lr", "1e-3", "--wd", "0.1", "--optimizer", "signsgdm", "--beta2", "0.9"], "--beta2", None),
    (["wd-convert", "--lr", "1e-3", "--wd", "0.1", "--from", "pytorch"], "--to", None),
    (["wd-convert", "--lr", "1e-3", "--wd", "0.1", "--from", "torch", "--to", "adamc"], "--from", "torch"),
    (["wd-convert", "--lr", "1e-3", "--wd", "2", "--from", "independent", "--to", "pytorch"], "--wd", "2"),
    (["frobnicate"], "frobnicate", None),
    # issue 29: a flag that would not enter the answer is refused, not ignored
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--schedule", "cosine", "--steps", "1000", "--warmup", "5000"],
     "--warmup", "5000"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--warmup", "100"], "--warmup", "100"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--optimizer", "lion", "--steps", "900", "--warmup", "100"],
     "--warmup", "100"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--floor", "0.1"], "--floor", "0.1"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--floor", "0.1", "--steps", "10"], "--floor", "constant"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--schedule", "cosine", "--steps", "10", "--decay-start", "5"],
     "--decay-start", "5"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--theta0-rms", "0.02"], "--theta0-rms", "0.02"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--beta2", "0.99"], "--beta2", "0.99"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--wd-convention", "torch"], "--wd-convention", "torch"),
    (["weight-rms", "--lr", "3e-4", "--wd", "1.5", "--wd-convention", "independent"], "--wd", "1.5"),
    (["weight-rms", "--lr", "3e-4", "--wd", "0.1", "--lr", "1e-3"], "--lr",
     "given twice (--lr 0.0003, then --lr 0.001)"),
    (["wd-convert", "--lr", "1e-3", "--wd", "0.1", "--from", "pytorch", "--to", "independent", "--peak-lr", "2e-3"],
     "--peak-lr", "0.002"),
    (["wd-convert", "--lr", "1e-3", "--wd", "0.1", "--from", "pytorch", "--to", "lh", "--peak-lr", "5e-4"],
     "--peak-lr", "0.0005"),
    (["wd-convert", "--lr", "1e-3", "--wd", "0.1", "--from", "pytorch", "--to", "l2"], "--to", "l2"),
    (["snr", "--momentum-ratio", "0.1", "--beta2", "0.9"], "--beta2", "0.9"),
    (["muon-scale", "--shape", "4", "4", "--wd", "0.2"], "--wd", "0.2"),
    (["muon-scale", "--shape", "4", "4", "--no-nesterov"], "--no-nesterov", None),
    (["muon-scale", "--shape", "4", "4", "--adam-lr", "1e-3", "--nesterov", "--no-nesterov"], "--nesterov", None),
    (["update-rms", "--eps", "1e-8"], "--eps", "--exp-avg-sq"),
    (["update-rms", "--exp-avg-sq", "1e-12"], "--exp-avg-sq", "--eps"),
    (["update-rms", "--eps", "1e-8", "--exp-avg-sq", "1e-12", "--eps-over-sigma", "0.1"], "--eps-over-sigma", "0.1"),
    (["update-rms", "--eps", "1e-8", "--exp-avg-sq", "0"], "--exp-avg-sq", "0"),
    (["update-rms", "--eps", "-1e-8", "--exp-avg-sq", "1e-12"], "--eps", "-1e-8"),
]


@pytest.mark.parametrize("argv, flag, value", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_exits_2_with_one_line(argv, flag, value):
    done = run(*argv)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert flag in lines[0] and "Traceback" not in done.stderr
    if value is not None:
        assert value in lines[0]


SUBCOMMANDS = {
    "update-rms": ["--beta1", "--beta2", "--snr", "--eps-over-sigma", "--eps", "--exp-avg-sq", "--json"],
    "snr": ["--update-rms", "--momentum-ratio", "--beta1", "--beta2"],
    "muon-scale": ["--beta1", "--beta2", "--shape", "--convention", "--adam-lr", "--wd", "--nesterov"],
    "weight-rms": ["--lr", "--wd", "--wd-convention", "--optimizer", "--schedule", "--steps", "--warmup",
                   "--decay-start", "--floor", "--theta0-rms", "--steps-per-epoch", "--nesterov", "--adjust-lr-fn"],
    "wd-convert": ["--lr", "--wd", "--from", "--to", "--peak-lr"],
}


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_names_every_flag_with_its_default(name):
    done = run(name, "--help")
    assert done.returncode == 0 and done.stderr == ""
    text = " ".join(done.stdout.split())
    for flag in SUBCOMMANDS[name]:
        assert flag in text
    assert "default" in text


def test_top_level_help_lists_the_subcommands():
    done = run("--help")
    assert done.returncode == 0
    for name in SUBCOMMANDS:
        assert name in done.stdout


def test_table_output_is_readable():
    done = run("weight-rms", "--lr", 1e-3, "--wd", 0.1)
    assert done.returncode == 0
    first = done.stdout.splitlines()[0].split()
    assert first[0] == "stationary_rms" and float(first[1]) > 0


def test_convention_names_match_the_theory():
    from optstats import cli

    assert cli.MUON_CONVENTIONS == tuple(theory.muon_scale_conventions((2, 3)))


def test_readme_example_is_the_commands_output():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("$ .venv/bin/optstats ", 1)[1].split("```", 1)[0]
    command, _, shown = block.partition("\n")
    done = run(*command.split())
    assert done.returncode == 0
    assert done.stdout.strip() == shown.strip()


# ---------------------------------------------------------------- report


@pytest.fixture(scope="module")
def watch_log(tmp_path_factory):
    """A short AdamW run watched with log=: the log and the in-memory summary."""
    torch = pytest.importorskip("torch")
    from optstats.probe import Watch

    path = tmp_path_factory.mktemp("report") / "run.jsonl"
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2, bias=False))
    opt = torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.1)
    watch = Watch(net, opt, every=2, log=path)
    gen = torch.Generator().manual_seed(1)
    for _ in range(24):
        opt.zero_grad()
        net(torch.randn(8, 4, generator=gen)).pow(2).mean().backward()
        opt.step()
    return path, watch.summary(start=12)


def test_report_is_the_watch_summary(watch_log):
    path, summary = watch_log
    out = answer("report", path, "--start", 12)
    assert out["window"] == [12, 24] and out["notes"] == summary.notes
    assert [r["name"] for r in out["rows"]] == [r["name"] for r in summary.rows]
    for got, want in zip(out["rows"], summary.rows):
        undefined = [key for key, value in want.items() if isinstance(value, float) and not np.isfinite(value)]
        # the row's own notes, then one for each undefined statistic
        assert got["notes"] == want["notes"] + [
            f"{key} n/a: undefined (nan) for this tensor in this window, not a number to print" for key in undefined]
        for key, value in want.items():
            if key == "notes":
                continue
            if isinstance(value, float) and not np.isfinite(value):
                assert got[key] is None
            elif isinstance(value, tuple):
                assert got[key] == list(value)
            else:
                assert got[key] == value, key
    table = run("report", path, "--start", 12)
    assert table.returncode == 0 and table.stdout.strip() == summary.to_markdown()


def bad_log(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d, good: d / "missing.jsonl", "cannot read"),
    (lambda d, good: bad_log(d, "empty.jsonl", ""), "is empty"),
    (lambda d, good: bad_log(d, "text.jsonl", "hello\n"), "line 1: not JSON"),
    (lambda d, good: bad_log(d, "other.jsonl", '{"a": 1}\n'), "line 1: not a watch log"),
    (lambda d, good: bad_log(d, "header.jsonl", good[0] + "\n"), "holds no record"),
    (lambda d, good: bad_log(d, "field.jsonl", "\n".join(
        [good[0], good[1].replace('"update_rms"', '"update_rmss"')]) + "\n"), "unknown field 'update_rmss'"),
    (lambda d, good: bad_log(d, "tensor.jsonl", "\n".join(
        [good[0], good[1].replace('"2.weight"', '"2.wieght"')]) + "\n"), "unknown tensor '2.wieght'"),
    (lambda d, good: bad_log(d, "cut.jsonl", "\n".join(good[:2] + [good[2][:40]]) + "\n"), "line 3: not JSON"),
])
def test_report_bad_logs_exit_2_with_one_line(tmp_path, watch_log, make, message):
    good = watch_log[0].read_text().splitlines()
    done = run("report", make(tmp_path, good))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("optstats report: error: ")
    assert message in done.stderr


def test_report_muon_law_by_default(tmp_path):
    # a torch.optim.Muon log: Muon's W, cos and angle by default (as the watch's summary), --no-muon-law
    # leaves them out; a header without Muon's settings (nesterov) exits 2 with one line
    torch = pytest.importorskip("torch")
    from optstats.probe import Watch

    path = tmp_path / "muon.jsonl"
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6, bias=False), torch.nn.Tanh(), torch.nn.Linear(6, 2, bias=False))
    opt = torch.optim.Muon(net.parameters(), lr=0.02, weight_decay=0.1)
    watch = Watch(net, opt, log=path)
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        opt.zero_grad()
        net(torch.randn(8, 4, generator=gen)).pow(2).mean().backward()
        opt.step()
    want = {r["name"]: r for r in watch.summary().rows}
    got = {r["name"]: r for r in answer("report", path)["rows"]}
    for name, row in want.items():
        assert row["weight_rms_predicted"] is not None
        for q in ("weight_rms", "cos_theta_u", "angle"):
            assert got[name][f"{q}_predicted"] == row[f"{q}_predicted"]
    off = answer("report", path, "--no-muon-law")["rows"]
    assert all(r["weight_rms_predicted"] is None and r["update_rms_predicted"] is not None for r in off)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    del header["groups"][0]["nesterov"]
    old = bad_log(tmp_path, "old.jsonl", "\n".join([json.dumps(header)] + lines[1:]) + "\n")
    done = run("report", old)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "lacks nesterov" in done.stderr


def test_report_start_outside_the_records_exits_2(watch_log):
    done = run("report", watch_log[0], "--start", 99)
    assert done.returncode == 2 and "start must lie in [2, 24]" in done.stderr and done.stderr.count("\n") == 1


def test_report_help_names_its_flags():
    done = run("report", "--help")
    assert done.returncode == 0 and done.stderr == ""
    text = " ".join(done.stdout.split())
    for flag in ("RUN.jsonl", "--start", "--muon-law", "--json"):
        assert flag in text
    assert "default" in text and "report" in run("--help").stdout


def test_finite_values_names_each_null():
    from optstats import cli

    values, notes = cli._finite_values({"a": float("nan"), "b": {"c": float("inf")}, "d": 1.0}, ["kept"])
    assert values == {"a": None, "b": {"c": None}, "d": 1.0}
    assert notes[0] == "kept" and notes[1].startswith("a n/a: its computation gives nan")
    assert notes[2].startswith("b.c n/a: its computation gives inf")
    _, why = cli._finite_values({"angle": float("nan")}, [], why="undefined (nan) for this tensor")
    assert why == ["angle n/a: undefined (nan) for this tensor, not a number to print"]
