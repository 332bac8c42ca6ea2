"""sympy helpers for the algebra the chapters share.

Symbols carry the assumptions the posts use; the stationary limit treats every
EMA coefficient as lying in [0, 1), which sympy cannot express as an
assumption, so :func:`stationary_limit` applies it explicitly.
"""

from __future__ import annotations

import sympy as sp

#: step counters: positive integers
t, i, j, k, n = sp.symbols("t i j k n", integer=True, positive=True)
#: EMA coefficients, taken in (0, 1) by the helpers below
beta, beta1, beta2, beta3 = sp.symbols("beta beta_1 beta_2 beta_3", positive=True)
#: gradient mean and standard deviation
mu = sp.Symbol("mu", real=True)
sigma = sp.Symbol("sigma", positive=True)


def geometric_sum(term, index, lower, upper):
    """sum_{index=lower..upper} term, evaluated by sympy, generic branch.

    sympy answers a geometric sum with a Piecewise whose special branch is the
    ratio-equals-one case; with every ratio a beta in [0, 1) (or a product or
    quotient of two distinct betas) the generic branch is the one that applies.
    """
    result = sp.summation(term, (index, lower, upper))
    return _generic_branch(result)


def tidy(expr):
    """Expand, combine powers and factor: sympy's raw sums carry factors like
    beta**(2t) * beta**(-2t - 2), unreadable and overflowing when lambdified."""
    return sp.factor(sp.powsimp(sp.expand(expr)))


def _generic_branch(expr):
    if isinstance(expr, sp.Piecewise):
        for value, cond in expr.args:
            if cond == sp.true:
                return _generic_branch(value)
        raise ValueError(f"no generic branch in {expr}")
    if expr.args:
        return expr.func(*(_generic_branch(a) for a in expr.args))
    return expr


def ema_unrolled(coef, x, upto=t, index=i):
    """m_upto = (1 - coef) sum_{index=1..upto} coef^(upto - index) x(index), as an unevaluated Sum."""
    return (1 - coef) * sp.Sum(coef ** (upto - index) * x(index), (index, 1, upto))


def ema_recursion(coef, xs):
    """The EMA m_n = coef m_{n-1} + (1 - coef) x_n run over the list xs from m_0 = 0."""
    m = sp.Integer(0)
    for x in xs:
        m = coef * m + (1 - coef) * x
    return m


def stationary_limit(expr, step=t, coefs=(beta, beta1, beta2, beta3)):
    """The limit step -> infinity, for coefficients in [0, 1).

    Every power coef**(a*step + b) with a > 0 tends to 0. Powers are split
    first (coef**(2t+1) -> coef * (coef**t)**2 and (b1 b3)**t -> b1**t b3**t), so
    that each such power is seen; any other dependence on ``step`` is an error,
    rather than silently left behind.
    """
    # expand first, so that beta**(2t) * beta**(-t) has combined into beta**t
    e = sp.expand(sp.expand_power_base(sp.sympify(expr), force=True))
    e = sp.expand(sp.expand_power_exp(e))

    def step_power(p):
        return p.is_Pow and p.base in coefs and p.exp.has(step)

    for p in e.atoms(sp.Pow):
        if step_power(p) and not sp.Poly(p.exp, step).coeff_monomial(step).is_positive:
            raise ValueError(f"{p} does not vanish as {step} -> oo; simplify the expression first")
    e = e.replace(step_power, lambda p: sp.Integer(0))
    e = sp.simplify(e)
    if e.has(step):
        raise ValueError(f"expression keeps a dependence on {step} after the limit: {e}")
    return e


def gaussian_moment(order, mean=mu, std=sigma):
    """E[X^order] for X ~ N(mean, std^2): sum_{even m} C(order, m) mean^(order-m) std^m (m-1)!!."""
    order = int(order)
    if order < 0:
        raise ValueError(f"order must be a whole number >= 0, got {order}")
    total = sp.Integer(0)
    for m in range(0, order + 1, 2):
        total += sp.binomial(order, m) * mean ** (order - m) * std**m * sp.factorial2(m - 1)
    return sp.expand(total)


def double_ema_kernel(outer=beta3, inner=beta1, lag=k):
    """(outer^lag - inner^lag) / (outer - inner): weight of x_{t-lag+1} in the EMA of an EMA."""
    return (outer**lag - inner**lag) / (outer - inner)


def assert_identity(lhs, rhs, label="identity"):
    """Raise AssertionError, showing both sides, unless lhs - rhs simplifies to 0."""
    diff = sp.simplify(sp.expand(sp.sympify(lhs) - sp.sympify(rhs)))
    if diff != 0:
        diff = sp.simplify(sp.factor(sp.together(diff)))
    if diff != 0:
        raise AssertionError(f"{label} does not hold:\n  lhs = {lhs}\n  rhs = {rhs}\n  lhs - rhs = {diff}")
    return True
