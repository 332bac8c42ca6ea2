"""Update rules of EMA-based optimizers, as in-place array steps.

Each rule maps a gradient stream g_1, g_2, ... to updates u_1, u_2, ...; the
weights then move by theta <- theta - lr * (u + wd * theta) (see
``optstats.simulate``). All rules use the EMA form of momentum,

    m_t = beta1 * m_{t-1} + (1 - beta1) * g_t,   m_0 = 0,

and differ in how u_t is made from m_t:

=================  ==========================================================
``SGDM``           u_t = m_t
``SignSGDM``       u_t = sign(m_t)
``SoftSignSGDM``   u_t = m_t / sqrt(m_t^2 + eps^2)
``Adam``           v_t = beta2 v_{t-1} + (1 - beta2) g_t^2,  v_0 = 0,
                   u_t = mhat_t / (sqrt(vhat_t) + eps), where mhat = m/(1-beta1^t)
                   and vhat = v/(1-beta2^t) with bias correction, else m and v
``Lion``           u_t = sign(beta1 m_{t-1} + (1 - beta1) g_t), then
                   m_t = beta2 m_{t-1} + (1 - beta2) g_t (the published Lion:
                   its stored momentum is the beta2 EMA)
``Muon``           u_t = msign(m_t) on the last two axes (a stack of matrices):
                   U V^T from the SVD m_t = U S V^T, or that many steps of
                   the quintic Newton-Schulz iteration used in practice
                   (float64, float32 or torch's bfloat16); with Nesterov
                   (torch's default) msign(beta1 m_t + (1 - beta1) g_t)
=================  ==========================================================

beta1 = 0 gives the momentum-free versions (SGD, SignSGD, SoftSignSGD, RMSProp-
like Adam). Hyperparameters broadcast against the coordinates: beta1 of shape
(7, 1) with 1000 coordinates runs a (7, 1000) grid in one go.

Usage: ``state = rule.init(shape)``, then ``u = rule.step(state, g)`` once per
step. ``u`` is a buffer owned by ``state``, overwritten by the next step.
"""

from __future__ import annotations

import numpy as np

from . import _validate


class State:
    """The arrays one rule carries between steps, plus the step count t."""

    def __init__(self, shape, names):
        self.t = 0
        self.shape = tuple(shape)
        for name in names:
            setattr(self, name, np.zeros(self.shape))
        self.u = np.zeros(self.shape)
        self.tmp = np.empty(self.shape)


class _MomentumRule:
    """Shared part: the momentum EMA and the broadcast bookkeeping."""

    _state_arrays = ("m",)
    #: u is an odd function of the gradient history (g -> -g flips u), so under
    #: symmetric zero-mean noise E[u] = 0 exactly; the estimators use this.
    odd = True
    #: axes of one unit the rule acts on jointly: 0 for a coordinatewise rule,
    #: 2 for a matrix rule (the estimators of ``simulate`` then take whole
    #: matrices as their independent replicas)
    event_ndim = 0

    def __init__(self, beta1):
        self.beta1 = _validate.beta("beta1", beta1)
        self._c1 = 1.0 - self.beta1

    @property
    def _betas(self) -> tuple:
        return (self.beta1,)

    @property
    def momentum_beta(self):
        """The coefficient of the EMA kept in ``state.m`` (beta1 for every rule
        but Lion, whose state holds its beta2 EMA). The estimators' control
        variates use it: state.m is an EMA of the gradients with this beta."""
        return self.beta1

    @property
    def param_shape(self) -> tuple:
        """Broadcast shape of the hyperparameters."""
        return np.broadcast_shapes(*(np.shape(b) for b in self._hyper()))

    def _hyper(self) -> tuple:
        return self._betas

    @property
    def timescale(self) -> float:
        """The longest memory 1/(1 - beta) among the rule's EMAs, in steps."""
        return float(max(np.max(1.0 / (1.0 - b)) for b in self._betas))

    def init(self, shape) -> State:
        """Fresh state (all EMAs zero, t = 0) for gradients of ``shape``."""
        shape = tuple(shape)
        if np.broadcast_shapes(shape, self.param_shape) != shape:
            raise ValueError(f"shape must contain the hyperparameters' shape {self.param_shape}, got {shape}")
        return State(shape, self._state_arrays)

    def _momentum(self, state: State, g: np.ndarray) -> None:
        state.t += 1
        state.m *= self.beta1
        np.multiply(g, self._c1, out=state.tmp)
        state.m += state.tmp

    def step(self, state: State, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={np.asarray(v).tolist()!r}" for k, v in self._repr_args().items())
        return f"{type(self).__name__}({args})"

    def _repr_args(self) -> dict:
        return {"beta1": self.beta1}


class SGDM(_MomentumRule):
    """u_t = m_t (EMA momentum; beta1 = 0 is SGD)."""

    def step(self, state: State, g: np.ndarray) -> np.ndarray:
        self._momentum(state, g)
        np.copyto(state.u, state.m)
        return state.u


class SignSGDM(_MomentumRule):
    """u_t = sign(m_t) (beta1 = 0 is SignSGD)."""

    def step(self, state: State, g: np.ndarray) -> np.ndarray:
        self._momentum(state, g)
        np.sign(state.m, out=state.u)
        return state.u


class SoftSignSGDM(_MomentumRule):
    """u_t = softsign(m_t, eps) = m_t / sqrt(m_t^2 + eps^2) (post 10563)."""

    def __init__(self, beta1, eps):
        super().__init__(beta1)
        self.eps = _validate.nonnegative("eps", eps)
        self._eps2 = self.eps**2

    def _hyper(self) -> tuple:
        return (self.beta1, self.eps)

    def _repr_args(self) -> dict:
        return {"beta1": self.beta1, "eps": self.eps}

    def step(self, state: State, g: np.ndarray) -> np.ndarray:
        self._momentum(state, g)
        np.square(state.m, out=state.u)
        state.u += self._eps2
        np.sqrt(state.u, out=state.u)
        np.divide(state.m, state.u, out=state.u)
        return state.u


class Adam(_MomentumRule):
    """Adam's update direction u_t (see the module docstring).

    Without bias correction (the default, the steady-state form of the posts)
    u_t = m_t / (sqrt(v_t) + eps).
    """

    _state_arrays = ("m", "v")

    def __init__(self, beta1, beta2, eps=0.0, bias_correction=False):
        super().__init__(beta1)
        self.beta2 = _validate.beta("beta2", beta2)
        self.eps = _validate.nonnegative("eps", eps)
        if not isinstance(bias_correction, (bool, np.bool_)):
            raise ValueError(f"bias_correction must be True or False, got {bias_correction!r}")
        self.bias_correction = bool(bias_correction)
        self._c2 = 1.0 - self.beta2

    @property
    def _betas(self) -> tuple:
        return (self.beta1, self.beta2)

    def _hyper(self) -> tuple:
        return (self.beta1, self.beta2, self.eps)

    def _repr_args(self) -> dict:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps, "bias_correction": self.bias_correction}

    def step(self, state: State, g: np.ndarray) -> np.ndarray:
        self._momentum(state, g)
        state.v *= self.beta2
        np.square(g, out=state.tmp)
        state.tmp *= self._c2
        state.v += state.tmp
        np.sqrt(state.v, out=state.u)
        if self.bias_correction:
            t = state.t
            state.u /= np.sqrt(1.0 - self.beta2**t)
            if np.any(self.eps):
                state.u += self.eps
            state.u *= 1.0 - self.beta1**t
        elif np.any(self.eps):
            state.u += self.eps
        np.divide(state.m, state.u, out=state.u)
        return state.u


class Lion(_MomentumRule):
    """Lion (Chen et al. 2023): u_t = sign(beta1 m_{t-1} + (1 - beta1) g_t),
    then m_t = beta2 m_{t-1} + (1 - beta2) g_t.

    ``state.m`` holds the beta2 EMA, so ``momentum_beta`` is beta2.
    """

    def __init__(self, beta1, beta2):
        super().__init__(beta1)
        self.beta2 = _validate.beta("beta2", beta2)
        self._c2 = 1.0 - self.beta2

    @property
    def _betas(self) -> tuple:
        return (self.beta1, self.beta2)

    @property
    def momentum_beta(self):
        return self.beta2

    def _repr_args(self) -> dict:
        return {"beta1": self.beta1, "beta2": self.beta2}

    def step(self, state: State, g: np.ndarray) -> np.ndarray:
        state.t += 1
        # the pre-sign mix c_t = beta1 m_{t-1} + (1 - beta1) g_t, in u
        np.multiply(state.m, self.beta1, out=state.u)
        np.multiply(g, self._c1, out=state.tmp)
        state.u += state.tmp
        np.sign(state.u, out=state.u)
        state.m *= self.beta2
        np.multiply(g, self._c2, out=state.tmp)
        state.m += state.tmp
        return state.u


#: the quintic Newton-Schulz coefficients (a, b, c) of Keller Jordan's Muon
#: (github.com/KellerJordan/Muon, also in modded-nanogpt and torch.optim.Muon's
#: defaults): tuned so that few steps push every singular value into roughly
#: [0.7, 1.2], not to converge
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
#: the precisions the Newton-Schulz iteration can run in: float64 (numpy's
#: default), float32, and bfloat16 emulated as torch.optim.Muon computes it
NS_DTYPES = ("float64", "float32", "bfloat16")
#: torch.optim.Muon's floor on the Frobenius norm it divides by (its EPS)
NS_EPS = 1e-7


def round_bfloat16(x):
    """``x`` rounded to the nearest bfloat16 (ties to even), as float64.

    bfloat16 keeps the top 16 bits of a float32 (8 exponent bits, 7 stored
    mantissa bits). The value goes float64 -> float32 (round to nearest) ->
    bfloat16 (round to nearest even on the 16 dropped bits), the path torch
    takes from a float32 tensor or a float32 accumulator. Infinities stay;
    finite values beyond bfloat16's range round to infinity as in torch.
    """
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def _newton_schulz_bfloat16(X, ns_steps):
    """torch.optim.Muon's ``_zeropower_via_newtonschulz`` (torch 2.13) with
    bfloat16 emulated: every tensor it holds is rounded to bfloat16 where
    torch stores one. Products of two bfloat16 numbers are exact in float64
    and the sums are taken in float64, then rounded once, as torch's CPU
    matmul and addmm do (they accumulate in float32 and round the result,
    beta * C + alpha * A @ B, once; measured bit for bit in the tests)."""
    a, b, c = NEWTON_SCHULZ
    X = round_bfloat16(X)
    # the norm of the bfloat16 tensor, itself a bfloat16, floored at EPS
    norm = round_bfloat16(np.sqrt(np.sum(X * X, axis=(-2, -1), keepdims=True)))
    X = round_bfloat16(X / np.maximum(norm, NS_EPS))
    for _ in range(ns_steps):
        gram = round_bfloat16(X @ np.swapaxes(X, -1, -2))
        gram_update = round_bfloat16(b * gram + c * (gram @ gram))
        X = round_bfloat16(a * X + gram_update @ X)
    return X


def msign(x, ns_steps=None, ns_dtype=None):
    """The matrix sign U V^T of each matrix in the last two axes of ``x``
    (x = U S V^T, the thin SVD; zero singular values give zero directions).

    ``ns_steps=None`` computes it exactly by SVD; an integer runs that many
    steps of the quintic Newton-Schulz iteration X <- a X + (b A + c A^2) X,
    A = X X^T, from X = x / ||x||_F (transposed first when x is tall), with the
    coefficients :data:`NEWTON_SCHULZ`, as Muon does in practice.
    ``ns_dtype`` (one of :data:`NS_DTYPES`, default float64) is the precision
    of the iteration; ``"bfloat16"`` reproduces torch.optim.Muon's iteration
    (see :func:`_newton_schulz_bfloat16`). The result is float64 either way.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 axes (a matrix or a stack of them), got shape {x.shape}")
    if ns_dtype is not None and ns_dtype not in NS_DTYPES:
        raise ValueError(f"ns_dtype must be one of {NS_DTYPES} or None, got {ns_dtype!r}")
    if ns_steps is None:
        if ns_dtype not in (None, "float64"):
            raise ValueError(f"ns_dtype is for the Newton-Schulz iteration (ns_steps >= 1); "
                             f"the SVD runs in float64, got ns_dtype={ns_dtype!r} with ns_steps=None")
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        scale = np.finfo(float).eps * np.max(x.shape[-2:]) * s[..., :1]
        return (u * (s > scale)[..., None, :]) @ vt
    ns_steps = _validate.count("ns_steps", ns_steps)
    tall = x.shape[-2] > x.shape[-1]
    X = np.swapaxes(x, -1, -2) if tall else x
    if ns_dtype == "bfloat16":
        X = _newton_schulz_bfloat16(X, ns_steps)
    else:
        dtype = np.float32 if ns_dtype == "float32" else np.float64
        X = X.astype(dtype)
        norm = np.linalg.norm(X, axis=(-2, -1), keepdims=True)
        X = X / np.where(norm > 0, norm, 1.0).astype(dtype)
        a, b, c = (dtype(v) for v in NEWTON_SCHULZ)
        for _ in range(ns_steps):
            A = X @ np.swapaxes(X, -1, -2)
            X = a * X + (b * A + c * A @ A) @ X
        X = X.astype(np.float64)
    return np.swapaxes(X, -1, -2) if tall else X


class Muon(_MomentumRule):
    """Muon's update direction u_t = msign(x_t), per matrix in the last two
    axes (no scale factor: at full rank the exact update has RMS
    1/sqrt(max(n, m))).

    x_t is the EMA momentum m_t (``nesterov=False``) or, with ``nesterov=True``,
    torch.optim.Muon's Nesterov input: torch keeps buf <- buf.lerp(g, 1 - beta1)
    (our m_t) and orthogonalises g.lerp(buf, beta1) = beta1 m_t + (1 - beta1) g_t
    (= beta1^2 m_{t-1} + (1 - beta1^2) g_t); Keller Jordan's and Moonlight's
    reference code do the same. ``ns_steps=None``: exact by SVD; an integer:
    the Newton-Schulz iteration of :func:`msign` in ``ns_dtype`` (None:
    float64; ``"bfloat16"``: torch's iteration).

    The hyperparameter beta1 must be a scalar (a grid over beta1 would mix
    the matrix axes with the grid's). ``state.m`` is the EMA with beta1 in
    both cases, so ``momentum_beta`` is beta1."""

    event_ndim = 2

    def __init__(self, beta1, ns_steps=None, nesterov=False, ns_dtype=None):
        super().__init__(beta1)
        if np.ndim(self.beta1) != 0:
            raise ValueError(f"beta1 must be a scalar for Muon, got shape {np.shape(self.beta1)}")
        self.ns_steps = None if ns_steps is None else _validate.count("ns_steps", ns_steps)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ValueError(f"nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        if ns_dtype is not None and ns_dtype not in NS_DTYPES:
            raise ValueError(f"ns_dtype must be one of {NS_DTYPES} or None, got {ns_dtype!r}")
        if self.ns_steps is None and ns_dtype not in (None, "float64"):
            raise ValueError(f"ns_dtype needs the Newton-Schulz iteration (ns_steps >= 1), got ns_dtype={ns_dtype!r} "
                             "with ns_steps=None (the SVD runs in float64)")
        self.ns_dtype = ns_dtype

    def _repr_args(self) -> dict:
        return {"beta1": self.beta1, "ns_steps": self.ns_steps, "nesterov": self.nesterov, "ns_dtype": self.ns_dtype}

    def init(self, shape) -> State:
        shape = tuple(shape)
        if len(shape) < 2 or min(shape[-2:]) < 1:
            raise ValueError(f"shape must end in two positive matrix axes (n, m), got {shape}")
        return super().init(shape)

    def step(self, state: State, g: np.ndarray) -> np.ndarray:
        self._momentum(state, g)
        if self.nesterov:
            # beta1 m_t + (1 - beta1) g_t, as torch's g.lerp(buf, beta1) forms it
            # for a weight >= 1/2: buf - (buf - g) (1 - beta1)
            np.subtract(state.m, g, out=state.tmp)
            state.tmp *= -self._c1
            state.tmp += state.m
            x = state.tmp
        else:
            x = state.m
        state.u[...] = msign(x, self.ns_steps, self.ns_dtype)
        return state.u
