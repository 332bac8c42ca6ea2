"""optstats: steady-state statistics of EMA-based optimizers.

The shared package of the executable book. Modules (see ``DESIGN`` in the
README): ``theory`` (closed forms), ``symbolic`` (sympy helpers),
``optimizers`` (update rules), ``gradients`` (gradient streams),
``schedules`` (learning-rate schedules as per-step arrays),
``simulate`` (estimators), ``stats`` (estimates with standard errors),
``plotting`` (house style).
"""

__version__ = "0.1.0"
