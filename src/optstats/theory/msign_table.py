"""Generate the table of the matrix arcsine law R(rho) shipped with the package.

``theory.msign_correlation(method="table")`` (the default) and so
``muon_weight_rms`` answer at any shape from this table instead of running
Monte Carlo SVDs of the caller's shape. R depends on the shape through
k = min(n, m) and the aspect ratio q = min(n, m) / max(n, m); it converges
like 1/k as k grows (measured in the chapter), and tends to rho as q -> 0 at
any k (A A^T / max(n, m) -> I, so msign(A) -> A / sqrt(max(n, m))).

The table holds R at the 33 nodes in arcsin(rho) of the "matrix" method, for
each q in ``ASPECTS`` and each k in ``SIZES`` up to that q's largest size,
each by the Monte Carlo of ``muon._matrix_nodes`` (antithetic pairs and
control variates) with ``BUDGET / (n m)`` pairs (within [``MIN_PAIRS``, ``MAX_PAIRS``]), and
the spread of that estimate over ``SEEDS`` seeds (its standard error goes into
the table too). Run ``python -m optstats.theory.msign_table`` (``make
msign-table``) to regenerate ``msign_table.npz``; about ten CPU-minutes.
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

#: aspect ratios min/max of the table (q = 0 is the exact limit R = rho)
ASPECTS = (1.0, 0.5, 0.25, 0.125, 0.0625)
#: sizes k = min(n, m) of the table
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: the largest max(n, m) tabulated: past it the 1/k law carries R to k -> inf
MAX_SIDE = 1024
#: elements n m per seed of Monte Carlo pairs: 2^19 gives a standard error
#: of about 3e-4 in R per seed, falling like 1/sqrt(budget)
BUDGET = 2**19
MIN_PAIRS = 2
#: the most pairs of one cell (the smallest matrices; 1 x 1 is the exact arcsine law)
MAX_PAIRS = 2**12
SEEDS = (0, 1)
PATH = pathlib.Path(__file__).with_name("msign_table.npz")


def table_shapes():
    """The (k, q, n, m) cells of the table, n = k <= m = k / q rounded."""
    cells = []
    for q in ASPECTS:
        for k in SIZES:
            m = int(round(k / q))
            if m <= MAX_SIDE:
                cells.append((k, q, k, m))
    return cells


def generate(path=PATH, log=sys.stdout):
    from .muon import _NODES, _matrix_nodes

    cells = table_shapes()
    r = np.full((len(ASPECTS), len(SIZES), _NODES), np.nan)
    se = np.full_like(r, np.nan)
    t0 = time.time()
    for k, q, n, m in cells:
        pairs = min(MAX_PAIRS, max(MIN_PAIRS, BUDGET // (n * m)))
        runs = np.array([_matrix_nodes(n, m, pairs, seed)[1] for seed in SEEDS])
        _matrix_nodes.cache_clear()
        i, j = ASPECTS.index(q), SIZES.index(k)
        r[i, j] = runs.mean(axis=0)
        se[i, j] = runs.std(axis=0, ddof=1) / np.sqrt(len(SEEDS))
        print(f"{n:5d} x {m:5d}  pairs {pairs:6d}  largest se {np.nanmax(se[i, j]):.1e}"
              f"  {time.time() - t0:6.0f} s", file=log, flush=True)
    phi = np.linspace(0.0, np.pi / 2.0, _NODES)
    np.savez_compressed(path, aspects=np.array(ASPECTS), sizes=np.array(SIZES), phi=phi, r=r, se=se,
                        budget=BUDGET, seeds=np.array(SEEDS))
    return path


if __name__ == "__main__":
    print(generate())
