import numpy as np
import pytest
from scipy import stats as sps

from optstats import stats


def test_from_replicas_mean_stderr_and_interval():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    est = stats.from_replicas(x)
    assert est.value == pytest.approx(2.5)
    assert est.stderr == pytest.approx(np.std(x, ddof=1) / 2)
    assert est.dof == 3
    q = sps.t.ppf(0.975, 3)
    assert est.ci95[0] == pytest.approx(2.5 - q * est.stderr)
    assert est.contains(2.5) and not est.contains(10.0)


def test_from_replicas_along_last_axis_keeps_grid_shape():
    x = np.arange(12.0).reshape(3, 4)
    est = stats.from_replicas(x)
    assert est.value.shape == (3,)
    np.testing.assert_allclose(est.value, x.mean(axis=1))
    assert est[1].value == pytest.approx(5.5)


def test_sqrt_is_the_delta_method():
    est = stats.sqrt(stats.Estimate(4.0, 0.4, dof=9))
    assert est.value == pytest.approx(2.0)
    assert est.stderr == pytest.approx(0.1)  # d sqrt(x)/dx = 1/(2 sqrt x) = 1/4
    assert est.dof == 9


def test_format_shows_value_and_95_percent_halfwidth():
    # the book's one convention for "±": the half-width of the 95% interval
    assert format(stats.Estimate(0.22912, 0.00012), ".3g") == "0.229 ± 0.000235"
    assert format(stats.Estimate(1.0, 0.1, dof=9), ".3f") == "1.000 ± 0.226"


def test_from_replicas_needs_two():
    with pytest.raises(ValueError, match="at least 2"):
        stats.from_replicas(np.array([1.0]))


def test_transform_is_the_delta_method():
    est = stats.Estimate(np.array([0.25, 4.0]), np.array([0.01, 0.1]), 39)
    out = stats.transform(est, np.log, lambda x: 1 / x)
    np.testing.assert_allclose(out.value, np.log([0.25, 4.0]))
    np.testing.assert_allclose(out.stderr, [0.04, 0.025])
    assert out.dof == 39
    np.testing.assert_allclose(stats.sqrt(est).stderr, [0.01, 0.025])


def test_z_scores_handle_zero_stderr():
    est = stats.Estimate(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.0, 0.0]))
    z = stats.z_scores(est, np.array([0.0, 2.0 * (1 + 1e-15), 3.1]))
    np.testing.assert_array_equal(z, [2.0, 0.0, np.inf])
