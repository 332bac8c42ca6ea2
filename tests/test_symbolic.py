import sympy as sp
import pytest

from optstats import symbolic as S
from optstats.symbolic import beta, beta1, beta3, i, k, mu, sigma, t


def test_geometric_sum_generic_branch():
    s = S.geometric_sum(beta ** (t - i), i, 1, t)
    assert not s.has(sp.Piecewise)
    S.assert_identity(s, (1 - beta**t) / (1 - beta))


def test_unrolled_ema_matches_recursion():
    xs = sp.symbols("x1:6")
    unrolled = S.ema_unrolled(beta, lambda idx: sp.Indexed(sp.IndexedBase("x"), idx), upto=5)
    unrolled = unrolled.doit().subs({sp.Indexed(sp.IndexedBase("x"), n + 1): xs[n] for n in range(5)})
    S.assert_identity(unrolled, S.ema_recursion(beta, xs))


def test_stationary_limit():
    expr = (1 - beta) ** 2 * (1 - beta ** (2 * t)) / (1 - beta**2) + beta1 ** (t + 1) * beta3**t
    S.assert_identity(S.stationary_limit(expr), (1 - beta) / (1 + beta))


def test_stationary_limit_refuses_growing_powers():
    with pytest.raises(ValueError, match="does not vanish"):
        S.stationary_limit(beta ** (-t))


@pytest.mark.parametrize("order, expected", [(0, 1), (1, mu), (2, mu**2 + sigma**2), (3, mu**3 + 3 * mu * sigma**2)])
def test_gaussian_moments(order, expected):
    S.assert_identity(S.gaussian_moment(order), expected)


def test_gaussian_fourth_moment_by_integration():
    x = sp.Symbol("x", real=True)
    density = sp.exp(-((x - 1) ** 2) / 2) / sp.sqrt(2 * sp.pi)
    direct = sp.integrate(x**4 * density, (x, -sp.oo, sp.oo))
    assert sp.simplify(direct - S.gaussian_moment(4, 1, 1)) == 0


def test_double_ema_kernel_is_the_inner_sum():
    n = sp.Symbol("n", integer=True, nonnegative=True)
    j = sp.Symbol("j", integer=True, positive=True)
    inner = S.geometric_sum(beta3 ** (t - j - n) * beta1**n, n, 0, t - j)
    S.assert_identity(inner, S.double_ema_kernel(beta3, beta1, t - j + 1))


def test_assert_identity_reports_both_sides():
    with pytest.raises(AssertionError, match="lhs - rhs"):
        S.assert_identity(beta**2, beta, label="wrong")
