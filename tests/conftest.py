import numpy as np
import pytest

#: simulation checks pass when |estimate - exact| < Z_TOL standard errors; with
#: Student's t at 39 degrees of freedom (40 coordinate groups) a correct
#: estimator fails one such check with probability about 3e-4.
Z_TOL = 4.0


@pytest.fixture
def rng():
    return np.random.default_rng(20251122)
