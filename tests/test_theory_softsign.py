"""theory.softsign: exact SoftSign moments against adaptive quadrature and
Monte Carlo, the post's closed forms against their definitions, the limits,
and bad input."""

import numpy as np
import pytest
from conftest import Z_TOL
from scipy import integrate, special

from optstats import optimizers, theory
from optstats.quadratic import NoisyQuadratic


def quad_moment(a, b, power, integrand=theory.softsign):
    """E[f(a + z)^power], z ~ N(0, 1), by scipy's adaptive quadrature with
    break points at the kink scale of f (|a + z| ~ b)."""
    f = lambda z: integrand(a + z, b) ** power * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    pts = sorted({-a - b, -a, -a + b})
    edges = [-a - 40] + pts + [-a + 40]
    return sum(
        integrate.quad(f, lo, hi, epsabs=1e-16, epsrel=1e-13, limit=400)[0] for lo, hi in zip(edges, edges[1:])
    )


@pytest.mark.parametrize("a", [0.0, 0.3, -1.7, 4.0])
@pytest.mark.parametrize("b", [1e-4, 0.05, 1.0, 30.0])
def test_exact_matches_adaptive_quadrature(a, b):
    mean, second = theory.softsign_moments(a, 1.0, b, 1.0)
    ref_mean, ref_second = quad_moment(a, b, 1), quad_moment(a, b, 2)
    # the issue asks for 1e-10 relative; the trapezoid rule is at ~1e-13
    assert mean == pytest.approx(ref_mean, rel=1e-10, abs=1e-15)
    assert second == pytest.approx(ref_second, rel=1e-10)


def test_scaling_and_sign_limit():
    # only a = g sqrt(B)/sigma and b = eps sqrt(B)/sigma matter (equal up to rounding)
    m1 = theory.softsign_moments(0.3, 2.0, 0.5, 16.0)
    m2 = theory.softsign_moments(0.6, 1.0, 1.0, 1.0)
    np.testing.assert_allclose(m1, m2, rtol=1e-13)
    mean, second = theory.softsign_moments(0.7, 1.0, 0.0, 1.0)
    assert mean == pytest.approx(special.erf(0.7 / np.sqrt(2)), rel=1e-12) and second == 1.0


def test_exact_matches_monte_carlo(rng):
    a, b = 0.4, 0.8
    z = rng.standard_normal((64, 20_000))
    u = theory.softsign(a + z, b)
    for power, value in zip((1, 2), theory.softsign_moments(a, 1.0, b, 1.0)):
        per_replica = (u**power).mean(axis=1)
        se = per_replica.std(ddof=1) / np.sqrt(per_replica.size)
        assert abs(per_replica.mean() - value) < Z_TOL * se


def test_clip_erf_is_the_clip_integral():
    clip = lambda x, b: np.clip(x / b, -1.0, 1.0)
    for a, b in [(0.0, 0.5), (0.7, 1.3), (-2.0, 0.2)]:
        mean, second = theory.softsign_moments(a, 1.0, b, 1.0, method="clip-erf")
        # the closed form against quad of the clip integrand (quad's own error ~1e-14)
        assert mean == pytest.approx(quad_moment(a, b, 1, clip), abs=1e-12)
        assert second == pytest.approx(quad_moment(a, b, 2, clip), abs=1e-12)


def test_approx_formulas():
    a, b = 0.5, 2.0
    mean, second = theory.softsign_moments(a, 1.0, b, 1.0, method="approx")
    assert mean == pytest.approx(a / np.sqrt(a**2 + b**2 + np.pi / 2), rel=1e-15)
    assert second == pytest.approx(1 - b**2 / (a**2 + b**2 + np.pi / 2), rel=1e-15)


def test_softsign_function():
    assert theory.softsign(0.0, 0.0) == 0.0
    np.testing.assert_allclose(theory.softsign([-2.0, 3.0], 0.0), [-1.0, 1.0])
    assert theory.softsign(3.0, 4.0) == pytest.approx(0.6, rel=1e-15)


def test_large_eps_is_sgd():
    """eps * softsign(x, eps) -> x, so eta*/eps -> SGD's eta* with the true noise."""
    p = NoisyQuadratic([1.0, -0.3, 0.5], np.diag([1.0, 2.0, 0.5]), np.diag([4.0, 1.0, 9.0]))
    b = np.array([1.0, 10.0, 100.0])
    eps = 1e5
    # eps softsign(x, eps) = x (1 - x^2 / 2 eps^2 + ...): relative corrections ~1e-9 for |x| <~ 10
    np.testing.assert_allclose(
        theory.optimal_lr_softsign(p, b, eps=eps, method="exact") / eps, theory.optimal_lr_sgdm(p, b), rtol=1e-8
    )


def test_softsign_lab_matches_exact(rng):
    p = NoisyQuadratic([1.0, -0.3, 0.5, 2.0], np.diag([1.0, 2.0, 0.5, 1.0]) + 0.2, np.diag([4.0, 1.0, 9.0, 2.0]))
    b = np.array([1.0, 10.0])
    est = p.optimal_lr(optimizers.SoftSignSGDM(0.0, 0.5), b, rng=rng, chains=128, steps=1000)
    exact = theory.optimal_lr_softsign(p, b, eps=0.5, method="exact")
    assert np.all(np.abs(est.value - exact) < Z_TOL * est.stderr)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: theory.softsign_moments(0.1, 1.0, -1e-3, 1.0), "eps must be >= 0"),
        (lambda: theory.softsign_moments(0.1, 0.0, 1e-3, 1.0), "sigma must be > 0"),
        (lambda: theory.softsign_moments(0.1, 1.0, 1e-3, 0.5), "batch_size must be >= 1"),
        (lambda: theory.softsign_moments(0.1, 1.0, 0.0, 1.0, method="clip-erf"), "eps must be > 0"),
        (lambda: theory.softsign_moments(0.1, 1.0, 1.0, 1.0, method="nope"), "method must be one of"),
        (lambda: theory.softsign(1.0, -1.0), "eps must be >= 0"),
        (lambda: theory.optimal_lr_softsign("p", 1.0, eps=1.0), "problem must be"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
