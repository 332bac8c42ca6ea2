"""optstats: steady-state statistics of EMA-based optimizers.

The shared package of the executable book. Modules (see ``DESIGN`` in the
README): ``theory`` (closed forms), ``symbolic`` (sympy helpers),
``optimizers`` (update rules), ``gradients`` (gradient streams),
``schedules`` (learning-rate schedules as per-step arrays),
``simulate`` (estimators), ``stats`` (estimates with standard errors),
``plotting`` (house style), ``training`` (the noisy-quadratic lab over many
steps), ``probe`` (PyTorch's Adam during real training; the only module that
imports torch, and nothing imports it).
"""

__version__ = "0.1.0"
