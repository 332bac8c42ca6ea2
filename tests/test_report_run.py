"""report.summarize_run: the report of a stored run is its equilibrium with
the theory next to it (the real-network chapter shows it for the language model)."""

from pathlib import Path

import numpy as np
import pytest

from optstats import report, runs, theory

DATA = Path(__file__).resolve().parents[1] / "book" / "data" / "real-network"


@pytest.fixture(scope="module")
def run():
    return runs.load(DATA)["chars-main"][0]


def test_window_means_are_the_equilibrium(run):
    summary = report.summarize_run(run)
    eq = run.equilibrium()
    for j, row in enumerate(summary.rows):
        assert row["name"] == run.names[j]
        for q in ("update_rms", "weight_rms", "angle"):
            assert row[q] == pytest.approx(eq[q][j], rel=1e-12)
    assert summary.window == (run.config.window[0] + 1, run.config.window[1])


def test_predictions_are_the_theory_at_the_runs_rates(run):
    summary = report.summarize_run(run)
    start, stop = run.config.window
    b1, b2 = run.config.betas
    for j, row in enumerate(summary.rows):
        assert row["update_rms_predicted"] == pytest.approx(theory.adam_update_rms(b1, b2, method="exact"))
        if run.decayed[j]:
            lr = np.asarray(run.lr)[:stop]
            want = theory.weight_rms_schedule(lr, np.full(stop, run.config.wd),
                                              theta0_rms=run.init_weight_rms[j], method="sum")[start:stop].mean()
            assert row["weight_rms_predicted"] == pytest.approx(want, rel=1e-12)
        else:
            assert row["weight_rms_predicted"] is None
