"""The real-network chapter's stored runs are what today's code trains, here.

The chapter analyses runs that ``make runs`` trained once and stored
(``optstats.runs``): its digits are then the same on every machine, and nbval
compares them. What a different CPU or a change to the training code moves is
checked here instead: the stored experiment must be the one the code defines,
and seed 0 re-trained now, on this machine's kernels, must fall within the
spread of the other stored seeds, statistic by statistic and tensor by tensor.
A re-run on other kernels is another draw of the training's chaos (the same
initialisation and minibatch order, so closer to seed 0 than a new seed is);
a changed factor in the training (the weight decay, a beta, the learning
rate) moves it by many of the seeds' standard deviations.
"""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from scipy import stats as scipy_stats  # noqa: E402

from optstats import network, runs  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / network.DATA
#: the runs whose seed 0 is re-trained in full and compared with the other
#: seeds' spread: each network's calibration run (16 and 12 seeds; the
#: out-of-sample runs' 6 seeds give too wide a t interval to be worth a
#: re-run, and the early check covers them)
CALIBRATION = ("digits-main", "chars-main")
#: the per-tensor equilibrium statistics compared; the chapter's claims rest on these
STATISTICS = ("update_rms", "weight_rms", "momentum_ratio", "cos_theta_u", "angle", "grad_norm",
              "power", "lag_sum_beta1", "lag_sum_beta3")
#: the statistical check's family error: Bonferroni over every comparison of
#: the CALIBRATION runs (conservative, as one run's statistics are positively
#: correlated). Averaged over seeds, not per machine: the re-run shares seed
#: 0's randomness, so its |z| inherits seed 0's own position in the spread
#: (up to about 4 here, against a bound of about 7.4)
FAMILY_ALPHA = 1e-3
#: the early-trajectory check: steps 1..EARLY_STEPS of seed 0 re-trained here
#: against stored seed 0, before the training's chaos has grown. Measured on
#: this machine for seed 0 of all eight runs: other float kernels (torch's
#: scalar paths with oneDNN at SSE4.1 and MKL unpinned; torch unpinned; all
#: pins off) moved the loss and the weight RMS over the first 50 steps by at
#: most 2.3e-7 relative (over 100 steps the language model at beta1 = 0.6
#: had already drifted to 1.0e-5, hence 50); a change of 1% in the weight
#: decay, the learning rate or 1 - beta2 moves them by 1.5e-4 or more within
#: 50 steps. EARLY_RTOL sits 43x above the first and 15x below the second.
EARLY_STEPS = 50
EARLY_RTOL = 1e-5


@pytest.fixture(scope="module")
def stored():
    return runs.load(DATA)


def test_stored_experiment_is_the_one_the_code_defines(stored):
    configs = network.chapter_configs()
    assert list(stored) == list(configs)
    for label, want in configs.items():
        assert [r.config for r in stored[label]] == want, f"{label}: run `make runs` after changing the configs"
    for run in (r for label in stored.values() for r in label):
        named = list(network.model(run.config).named_parameters())
        assert run.names == tuple(n for n, _ in named)
        assert run.sizes == tuple(p.numel() for _, p in named)
        assert run.fields["update_rms"].shape == (run.config.steps, len(run.names))
        assert set(run.snr) == set(run.config.snapshots)
        start, stop = run.config.window
        assert run.lag_products.shape == ((stop - start) // runs.LAG_BLOCK, len(run.names), run.config.lags + 5)


def summary(run) -> dict:
    """The statistics compared: the equilibrium means per tensor, the window's
    mean loss, the test accuracy, the final weight RMS (through the decay) and
    the SNR at the snapshots inside the window."""
    eq = run.equilibrium()
    out = {s: eq[s] for s in STATISTICS}
    out["lag_correlation_1"] = eq["lag_correlation"][:, 0]
    start, stop = run.config.window
    out["window_loss"] = np.array([run.loss[start:stop].mean()])
    out["test_accuracy"] = np.array([run.test_accuracy])
    out["final_weight_rms"] = run.fields["weight_rms"][-1]
    inside = [s for s in run.config.snapshots if start < s <= stop]
    if inside:
        out["snr"] = np.mean([[run.snr[s][n] for n in run.names] for s in inside], axis=0)
    return out


def prediction_z(new: dict, reference: list) -> dict:
    """(new - mean) / (s sqrt(1 + 1/n)) per statistic and entry, the
    reference being n independent runs: Student's t with n - 1 degrees of
    freedom when the new run is one more draw of the same distribution."""
    out = {}
    n = len(reference)
    for key, value in new.items():
        ref = np.stack([r[key] for r in reference])
        spread = ref.std(axis=0, ddof=1) * np.sqrt(1 + 1 / n)
        out[key] = (value - ref.mean(axis=0)) / spread
    return out


@pytest.mark.parametrize("label", list(network.chapter_configs()))
def test_rerun_early_steps_match_stored_seed_0(stored, label):
    run = stored[label][0]
    trainer = network.Trainer(run.config)
    params = [p for _, p in trainer.model.named_parameters()]

    def weight_rms():
        with torch.no_grad():
            return np.array([p.double().pow(2).mean().sqrt().item() for p in params])

    np.testing.assert_allclose(weight_rms(), run.init_weight_rms, rtol=EARLY_RTOL)
    loss, rms = [], []
    for t in range(1, EARLY_STEPS + 1):
        loss.append(trainer.step(t))
        rms.append(weight_rms())
    np.testing.assert_allclose(loss, run.loss[:EARLY_STEPS], rtol=EARLY_RTOL)
    np.testing.assert_allclose(rms, run.fields["weight_rms"][:EARLY_STEPS], rtol=EARLY_RTOL)


@pytest.mark.parametrize("label", CALIBRATION)
def test_rerun_falls_within_the_stored_seeds_spread(stored, label):
    seeds = stored[label]
    assert seeds[0].config.seed == 0
    reference = [summary(r) for r in seeds[1:]]  # seed 0 is what is re-run
    fresh = network.train_measured(seeds[0].config)
    z = prediction_z(summary(fresh), reference)
    # every comparison this test makes over the calibration labels
    comparisons = sum(v.size for name in CALIBRATION for v in summary(stored[name][1]).values())
    bound = scipy_stats.t.ppf(1 - FAMILY_ALPHA / comparisons / 2, len(reference) - 1)
    worst = {key: float(np.max(np.abs(v))) for key, v in z.items()}
    failed = {key: round(w, 1) for key, w in worst.items() if not w <= bound}
    assert not failed, f"|z| above {bound:.1f} (seed spread, Bonferroni at {FAMILY_ALPHA}): {failed}"
