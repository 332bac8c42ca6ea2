import numpy as np
import pytest

from optstats.quadratic import NoisyQuadratic

#: simulation checks pass when |estimate - exact| < Z_TOL standard errors; with
#: Student's t at 39 degrees of freedom (40 coordinate groups) a correct
#: estimator fails one such check with probability about 3e-4.
Z_TOL = 4.0


@pytest.fixture
def rng():
    return np.random.default_rng(20251122)


def correlated_problem():
    """A 4-coordinate noisy quadratic with correlated noise and a non-diagonal Hessian."""
    g = np.array([1.0, -0.5, 0.25, 2.0])
    a = np.array([[2.0, 0.5, 0.0, 0.3], [0.5, 1.0, 0.2, 0.0], [0.0, 0.2, 0.5, 0.1], [0.3, 0.0, 0.1, 1.5]])
    sigma = np.array([[9.0, 3.0, 0.0, 1.0], [3.0, 4.0, 1.0, 0.0], [0.0, 1.0, 16.0, 2.0], [1.0, 0.0, 2.0, 1.0]])
    return NoisyQuadratic(g, a, sigma)
