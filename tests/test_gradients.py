import numpy as np
import pytest

from optstats.gradients import Gaussian


def test_draw_shape_dtype_and_moments(rng):
    g = Gaussian(mean=0.5, std=2.0, batch_size=4).draw(rng, 1000, (1000,))
    assert g.shape == (1000, 1000) and g.dtype == np.float64
    # 1e6 draws of N(0.5, 1): the sample mean has stderr 1e-3, the sample
    # variance ~1.4e-3; 5 stderr bounds
    assert abs(g.mean() - 0.5) < 5e-3
    assert abs(g.var() - 1.0) < 7e-3


def test_per_coordinate_means_broadcast(rng):
    mean = np.array([0.0, 1.0, -2.0])
    g = Gaussian(mean=mean, std=0.1).draw(rng, 20000, (3,))
    np.testing.assert_allclose(g.mean(axis=0), mean, atol=5 * 0.1 / np.sqrt(20000))


def test_snr():
    assert Gaussian(mean=0.5, std=2.0, batch_size=4).snr == pytest.approx(0.25)


def test_same_seed_same_draws():
    a = Gaussian().draw(np.random.default_rng(1), 5, (7,))
    b = Gaussian().draw(np.random.default_rng(1), 5, (7,))
    np.testing.assert_array_equal(a, b)


def test_out_buffer_is_used(rng):
    out = np.empty((3, 4))
    g = Gaussian().draw(rng, 3, (4,), out=out)
    assert g is out


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"std": 0.0}, "std"),
        ({"std": -1.0}, "std"),
        ({"batch_size": 0.5}, "batch_size"),
        ({"mean": np.nan}, "mean"),
        ({"mean": np.inf}, "mean"),
    ],
)
def test_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Gaussian(**kwargs)


def test_bad_draw_arguments(rng):
    with pytest.raises(ValueError, match="rng"):
        Gaussian().draw(np.random.RandomState(0), 3, (4,))
    with pytest.raises(ValueError, match="steps"):
        Gaussian().draw(rng, 0, (4,))
    with pytest.raises(ValueError, match="shape"):
        Gaussian(mean=np.zeros(3)).draw(rng, 2, (4,))


# --- streams outside the model (update-rms chapter, "Outside the model") ---
from optstats import simulate, optimizers  # noqa: E402
from optstats.gradients import AR1, DriftingMean, StudentT  # noqa: E402


def test_student_t_has_the_stated_variance_and_heavy_tails():
    g = StudentT(5, mean=0.5, std=2.0).draw(np.random.default_rng(3), 4000, (200,))
    # 800,000 draws: the mean's standard error is 2/sqrt(8e5) = 0.0022; the variance's
    # (kurtosis 9 at df = 5) about 4 sqrt(8/8e5) = 0.013; 5 standard errors each
    assert abs(g.mean() - 0.5) < 5 * 0.0022
    assert abs(g.var() - 4.0) < 5 * 0.013 * 4
    z = (g - 0.5) / 2.0
    assert np.mean(z**4) > 4  # Gaussian: 3; t_5 with unit variance: 9


@pytest.mark.parametrize("rho", [-0.5, 0.3, 0.9])
def test_ar1_is_stationary_with_lag_correlation_rho(rho):
    rng = np.random.default_rng(4)
    draw = AR1(rho, std=1.5).sampler(rng, (2000,))
    # two blocks in a row: the state carries over, so lag one spans the seam too
    g = np.concatenate([draw(300, np.empty((300, 2000))), draw(300, np.empty((300, 2000)))])
    # 1.2e6 values (effectively fewer by (1+rho)/(1-rho)); 5 standard errors
    n_eff = g.size * (1 - abs(rho)) / (1 + abs(rho))
    assert abs(g[0].var() / 2.25 - 1) < 5 * np.sqrt(2 / 2000)  # stationary from step one
    assert abs(g.var() / 2.25 - 1) < 5 * np.sqrt(2 / n_eff) * 2
    lag1 = np.mean(g[1:] * g[:-1]) / np.mean(g * g)
    assert abs(lag1 - rho) < 5 / np.sqrt(n_eff)
    assert abs(np.mean(g[300] * g[299]) / 2.25 - rho) < 5 * 1.5 / np.sqrt(2000)


def test_drifting_mean_is_slow_signal_plus_white_noise():
    rng = np.random.default_rng(5)
    g = DriftingMean(0.5, memory=200).draw(rng, 2000, (1000,))
    # variance 0.25 + 1; the lag-one correlation is 0.25 (1 - 1/200) / 1.25
    assert abs(g.var() / 1.25 - 1) < 0.05
    lag1 = np.mean(g[1:] * g[:-1]) / np.mean(g * g)
    assert abs(lag1 - 0.25 * (1 - 1 / 200) / 1.25) < 0.01


def test_momentum_of_ar1_noise_has_the_derived_variance():
    # E[m^2] = (1-b)/(1+b) (1 + b rho)/(1 - b rho) sigma^2 (update-rms chapter, derived with sympy)
    for rho in (-0.5, 0.4):
        est = simulate.momentum_ratio(optimizers.SGDM(0.9), AR1(rho), rng=np.random.default_rng(6), n_coords=4000)
        k = 0.1 / 1.9
        exact = np.sqrt(k * (1 + 0.9 * rho) / (1 - 0.9 * rho))
        assert abs(est.value - exact) < 4 * est.stderr


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: StudentT(2.0), "df"),
        (lambda: StudentT(np.array([3.0, 4.0])), "df"),
        (lambda: AR1(1.0), "rho"),
        (lambda: AR1(-1.2), "rho"),
        (lambda: AR1(0.5, std=0), "std"),
        (lambda: DriftingMean(0.0, 100), "drift_std"),
        (lambda: DriftingMean(0.5, 0.5), "memory"),
    ],
)
def test_bad_stream_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_control_variate_refused_for_correlated_streams():
    with pytest.raises(ValueError, match="control_variate must be False"):
        simulate.update_rms(optimizers.Adam(0.9, 0.95), AR1(0.2), rng=np.random.default_rng(0), n_coords=400)
