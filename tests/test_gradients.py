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
