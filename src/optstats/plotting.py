"""One house style for the book's figures, and the comparison plot.

Plotting only draws what it is given: no simulation or theory is computed here.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

#: colour cycle (colour-blind safe, Okabe-Ito)
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=COLORS),
    "legend.frameon": False,
    "font.size": 10,
    "lines.linewidth": 1.6,
    "errorbar.capsize": 3,
}


def use_house_style() -> None:
    """Apply the book's matplotlib style (call once, in a chapter's set-up cell).

    In a notebook, figures are also stored at twice their displayed size
    ("retina": a PNG at 2x the dpi, shown at 1x), so that they stay sharp on
    high-density screens."""
    mpl.rcParams.update(STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # outside Jupyter nothing is stored
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def errorbars(ax, x, estimate, *, label, color=None, marker="o", **kwargs):
    """Simulated points with 95% error bars (from an ``optstats.stats.Estimate``)."""
    value = np.asarray(estimate.value)
    return ax.errorbar(
        x, value, yerr=np.asarray(estimate.halfwidth95), fmt=marker, ms=4, color=color, label=label, **kwargs
    )


def compare(ax, x_theory, y_theory, x_sim, estimate, *, theory_label, sim_label, color=None):
    """A formula as a line, a simulation of it as points with 95% error bars, one colour."""
    (line,) = ax.plot(x_theory, y_theory, color=color, label=theory_label)
    errorbars(ax, x_sim, estimate, label=sim_label, color=line.get_color())
    return line


def relative_errorbars(ax, x, estimate, reference, *, label=None, color=None, marker="o", **kwargs):
    """A residual panel's points: 100 (simulated / reference - 1) in percent, with 95% error bars."""
    reference = np.asarray(reference, dtype=float)
    value = 100 * (np.asarray(estimate.value) / reference - 1)
    yerr = 100 * np.asarray(estimate.halfwidth95) / np.abs(reference)
    return ax.errorbar(x, value, yerr=yerr, fmt=marker, ms=4, color=color, label=label, **kwargs)
