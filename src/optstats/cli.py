"""The ``optstats`` command: the book's answers from the command line.

Argument parsing and printing around ``optstats.theory`` and
``optstats.schedules``; every number comes from those modules, so this file
holds no formula of its own. Each subcommand prints a readable table, or
JSON with ``--json``. Bad input exits with status 2 and one line that names
the flag, its value and the allowed range (never a traceback).

No flag is accepted and left unused: a flag that does not enter the answer
asked for (``--floor`` without a decaying schedule, ``--beta2`` with a
momentum ratio, a flag given twice) is refused the same way. A value that is
not a finite number (an infinite memory, a float64 overflow) is printed as
n/a (``null`` in JSON) with a note saying why.

Usage: ``optstats SUBCOMMAND --help`` (or ``python -m optstats``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap

import numpy as np

from . import __version__

OPTIMIZERS = ("adamw", "lion", "signsgdm", "muon")
SCHEDULES = ("constant", "linear", "cosine", "wsd")
WD_CONVENTIONS = ("pytorch", "independent", "lh", "adamc")
#: each weight-decay convention's update rule at a step with learning rate
#: lr_t, peak the schedule's peak learning rate, and whose it is (the --help of
#: wd-convert and weight-rms prints them, one a line; _decay_per_step is the
#: same rules in numbers)
WD_RULES = {
    "pytorch": "theta <- theta - lr_t (u + wd theta)",
    "independent": "theta <- theta - lr_t u - wd theta",
    "lh": "theta <- theta - lr_t u - (lr_t/peak) wd theta",
    "adamc": "theta <- theta - lr_t (u + (lr_t/peak) wd theta)",
}
WD_SOURCES = {"pytorch": "torch's AdamW", "independent": "ignores lr_t",
              "lh": "Loshchilov-Hutter", "adamc": "AdamC: wd ~ lr_t"}
#: the names of theory.MUON_SCALE_CONVENTIONS (a test keeps them equal), each
#: library's own name for its mode: the theory is imported only once the
#: arguments are good, so that a bad flag answers at once
MUON_CONVENTIONS = ("torch-original", "torch-match_rms_adamw", "keller-jordan", "moonlight", "nemo-shape_scaling",
                    "nemo-spectral", "nemo-unit_rms_norm", "optax", "keras")
#: torch.optim.Muon's adjust_lr_fn; "none" is its None, which torch reads as "original"
ADJUST_LR_FNS = ("original", "match_rms_adamw", "none")
#: Lion's default beta2 (Lion's paper); weight-rms's AdamW does not use beta2
#: (its weight RMS is the mean field, a function of beta1)
LION_BETA2 = 0.99
#: Adam's default beta2 where one enters (0.95, as in LLM training)
ADAM_BETA2 = 0.95


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's wrapping, but a newline in a help text starts a new line
    (one weight-decay convention a line)."""

    def _fill_text(self, text, width, indent):
        # a line that starts with spaces (a table row) is kept as it is
        lines = []
        for part in text.split("\n"):
            lines.append(indent + part if part.startswith(" ") else super()._fill_text(part, width, indent))
        return "\n".join(lines)

    def _split_lines(self, text, width):
        # argparse's own wrapping, but a flag such as --eps-over-sigma is not broken at its hyphens
        lines = []
        for part in text.split("\n"):
            lines.extend(textwrap.wrap(" ".join(part.split()), width, break_on_hyphens=False) or [""])
        return lines


def _once(action):
    """An argparse action that refuses a second use of its flag: argparse would
    keep the last value and drop the first without a word."""

    class Once(action):
        def __call__(self, parser, namespace, values, option_string=None):
            given = namespace.__dict__.setdefault("_given", {})
            this = f"{option_string} {_shown(values)}".strip()
            if self.dest in given:
                parser.error(f"argument {'/'.join(self.option_strings)}: given twice ({given[self.dest]}, then "
                             f"{this}); give it once")
            given[self.dest] = this
            super().__call__(parser, namespace, values, option_string)

    return Once


def _shown(values):
    return " ".join(map(str, values)) if isinstance(values, list) else ("" if values is None else str(values))


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr and exit status 2, a flag
    given twice is an error, and "-1e-3" is read as a (negative) value, not as
    a flag."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        # argparse's own pattern (a private attribute) misses exponents
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
        self.register("action", None, _once(argparse._StoreAction))
        self.register("action", "store", _once(argparse._StoreAction))

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class InputError(ValueError):
    """A value the command cannot answer for, found after parsing."""


# ---------------------------------------------------------------- argument types


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _in(low, high, *, low_open=False, high_open=True):
    """A number in [low, high) (or with the ends as given), named in the error."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    allowed = f"{left}{low:g}, {'inf' if high == np.inf else f'{high:g}'}{right}"

    def check(text):
        value = _number(text)
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above:
            raise argparse.ArgumentTypeError(f"must lie in {allowed}, got {text}")
        return value

    return check


def _whole(minimum):
    def check(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text}")
        return value

    return check


BETA = _in(0.0, 1.0)
BETA2 = _in(0.0, 1.0, low_open=True)
POSITIVE = _in(0.0, np.inf, low_open=True)
NONNEGATIVE = _in(0.0, np.inf)
FRACTION = _in(0.0, 1.0)


# ---------------------------------------------------------------- subcommands
# (each imports the theory itself: a bad flag is answered before that import)


def _eps_over_sigma(args):
    """eps / sigma, given as such or from eps and a logged exp_avg_sq; and sigma (None if not read)."""
    from . import theory

    state = [(flag, value) for flag, value in (("--eps", args.eps), ("--exp-avg-sq", args.exp_avg_sq))
             if value is not None]
    if args.eps_over_sigma is not None and state:
        raise InputError(f"give --eps-over-sigma or --eps with --exp-avg-sq, not both: got --eps-over-sigma "
                         f"{args.eps_over_sigma:g} and {state[0][0]} {state[0][1]:g}")
    if len(state) == 1:
        missing = "--exp-avg-sq" if state[0][0] == "--eps" else "--eps"
        raise InputError(f"{state[0][0]} {state[0][1]:g} needs {missing} too (eps / sigma with sigma from "
                         "exp_avg_sq), or give --eps-over-sigma")
    if not state:
        return (0.0 if args.eps_over_sigma is None else args.eps_over_sigma), None
    sigma = float(theory.noise_std_from_exp_avg_sq(args.exp_avg_sq, args.snr))
    return args.eps / sigma, sigma


def _update_rms(args):
    from . import theory

    eps_over_sigma, sigma = _eps_over_sigma(args)
    values = {
        key: float(theory.adam_update_rms(args.beta1, args.beta2, args.snr, method=method,
                                          eps_over_sigma=eps_over_sigma))
        for key, method in (("exact", "exact"), ("second_order", "second-order"), ("mean_field", "mean-field"))
    }
    notes = ["Adam at equilibrium, gradients iid N(mu, sigma^2) in time, SNR = mu^2/sigma^2 (update-RMS chapter)"]
    if sigma is not None:
        values["sigma"] = sigma
        values["eps_over_sigma"] = eps_over_sigma
        notes.append("sigma = sqrt(exp_avg_sq / (1 + snr)), sqrt(vhat) at snr 0 (theory.noise_std_from_exp_avg_sq): "
                     "E[v] = mu^2 + sigma^2 per coordinate; holds at equilibrium, once the bias correction has "
                     "faded (beta2^t << 1, so exp_avg_sq = vhat), for gradients iid in time; one coordinate's v "
                     "is one draw (its spread: the function's docstring)")
    if eps_over_sigma > 0:
        notes.append("eps > 0: each value times sqrt(1+SNR)/(sqrt(1+SNR)+eps/sigma), the mean field of the "
                     "denominator, measured in the epsilon chapter; not exact")
    return values, notes


def _read_back(values, notes, key, what, value, floor_key, floor, which, estimate):
    """values[key] = estimate() when ``value`` is at or above its pure-noise
    value ``floor``; below it no SNR >= 0 gives it: None, and the one note
    (the report's wording)."""
    values[key] = float(estimate()) if value >= floor else None
    values[floor_key] = floor
    if value < floor:
        notes.append(f"{key} n/a: {what} {value:g} is below {floor_key} = {floor:.6g}, {which}, which no SNR gives")


def _snr(args):
    from . import theory

    b1 = args.beta1
    if args.update_rms is not None:
        rms, b2 = args.update_rms, ADAM_BETA2 if args.beta2 is None else args.beta2
        notes = ["read from Adam's update RMS; assumes gradients independent in time, whose correlation lowers the "
                 "RMS and reads as a smaller SNR (update-RMS and real-network chapters)"]
        # below its pure-noise value an estimate has no SNR >= 0: n/a, with the one note
        floor = float(theory.adam_update_rms(b1, b2, method="exact"))
        floor_mf = float(theory.adam_update_rms(b1))
        values = {}
        _read_back(values, notes, "snr", "the update RMS", rms, "noise_floor", floor,
                   f"Adam's exact pure-noise value at beta=({b1:g}, {b2:g})",
                   lambda: theory.snr_from_update_rms(rms, b1, b2, method="exact"))
        _read_back(values, notes, "snr_mean_field", "the update RMS", rms, "noise_floor_mean_field", floor_mf,
                   "the mean field's pure-noise value sqrt((1-beta1)/(1+beta1))",
                   lambda: theory.snr_from_update_rms(rms, b1))
        order = ("snr", "snr_mean_field", "noise_floor", "noise_floor_mean_field")
        return {k: values[k] for k in order}, notes
    if args.beta2 is not None:
        raise InputError(f"--beta2 is for --update-rms only: the SNR of a momentum ratio depends on --beta1 "
                         f"alone, got --beta2 {args.beta2:g}")
    ratio = args.momentum_ratio
    notes = ["read from |m_t|/|g_t| of the EMA momentum; consistent for gradients independent in time, "
             "which correlated noise reads as signal (update-RMS chapter)"]
    # pure noise: |m| / |g| is the EMA's std over the gradient's, sqrt((1-beta1)/(1+beta1))
    floor = float(np.sqrt(theory.ema_variance(b1)))
    values = {}
    _read_back(values, notes, "snr", "the momentum ratio", ratio, "noise_floor", floor,
               "its pure-noise value sqrt((1-beta1)/(1+beta1))", lambda: theory.snr_from_momentum_ratio(ratio, b1))
    return values, notes


def _muon_shape(args):
    if len(args.shape) not in (2, 4):
        raise InputError(f"--shape takes 2 numbers (fan-out, fan-in) or 4 (out, in, kh, kw), got {len(args.shape)}")
    return tuple(args.shape)


def _muon_scale(args):
    from . import theory

    shape = _muon_shape(args)
    if args.adam_lr is None and (args.wd is not None or args.nesterov is not None):
        flag = f"--wd {args.wd:g}" if args.wd is not None else ("--nesterov" if args.nesterov else "--no-nesterov")
        raise InputError(f"{flag} is used with --adam-lr only (the Muon lr with AdamW's angle), got it without "
                         "--adam-lr")
    if args.adam_lr is not None:
        args.wd = 0.1 if args.wd is None else args.wd
        args.nesterov = True if args.nesterov is None else args.nesterov
    names = MUON_CONVENTIONS if args.convention == "all" else (args.convention,)
    if len(shape) == 4 and args.convention == "all":
        # only the libraries that take a 4-D weight
        names = tuple(name for name in names if theory.CONV_HANDLING[name] is None)
    matrix = theory.conv_matrix(shape, names[0])[0]
    adam = float(theory.adam_update_rms(args.beta1, args.beta2, method="exact"))
    muon = float(theory.muon_update_rms(matrix))
    values = {
        "scale": float(theory.adam_matching_scale(args.beta1, args.beta2, matrix)),
        "scale_mean_field": float(theory.adam_matching_scale(args.beta1, args.beta2, matrix, method="mean-field")),
        "adam_update_rms": adam,
        "muon_update_rms": muon,
    }
    notes = [f"a {shape[0]} x {shape[1]} weight, {shape[0]} its fan-out (PyTorch's rows); scale gives msign(M) "
             "Adam's exact stationary update RMS under pure noise (beyond-adamw chapter); each factor as that "
             "library's code computes it in its own weight layout (file and function in "
             "optstats.theory.MUON_SCALE_CONVENTIONS)"]
    if len(shape) == 4:
        notes.append(f"4-D weight: orthogonalised as the {matrix[0]} x {matrix[1]} matrix (out, in kh kw); "
                     "torch, Moonlight, NeMo, optax and keras refuse 4-D weights in Muon")
    for name in names:
        _, factor = theory.conv_matrix(shape, name)
        entry = {"factor": factor, "update_rms": factor * muon, "over_adam": factor * muon / adam}
        if args.adam_lr is not None:
            # the Muon lr whose step lr * factor * msign has Adam's update RMS times adam_lr
            entry["lr_same_update_rms"] = args.adam_lr * adam / (factor * muon)
        values[name.replace("-", "_")] = entry
    if args.adam_lr is not None:
        values["lr_same_angular_update"] = float(_angle_matching_lr(args, matrix))
        notes.append(f"lr_same_update_rms: the Muon lr whose step has the update RMS of AdamW at lr {args.adam_lr:g}; "
                     f"lr_same_angular_update: the Muon lr whose weights turn by AdamW's angle per step at "
                     f"--wd {args.wd:g} for both (the decay per step lr wd, with the lr before any adjustment, "
                     f"as torch, Keller Jordan, Moonlight and optax decay); the angle does not depend on the "
                     f"factor (the weight norm follows the step), so it is one lr for every convention; "
                     f"Muon with {'Nesterov' if args.nesterov else 'EMA'} momentum, exact msign")
    return values, notes


def _angle_matching_lr(args, matrix):
    """The Muon lr (decay lr wd) whose stationary angle equals AdamW's at (adam_lr, wd)."""
    from . import theory

    lr, wd = args.adam_lr, args.wd
    if lr * wd >= 1:
        raise InputError(f"--adam-lr times --wd is the decay per step and must be < 1, got {lr * wd:g}")
    best = theory.adamw_weight_rms(lr, wd, beta1=args.beta1, method="exact-sums")
    update = theory.adam_update_rms(args.beta1, args.beta2, method="exact")
    target = theory.angular_update(lr, wd, update, best, theory.cos_theta_u(lr, wd, update, best))
    # the angle grows with the decay per step: bisection on log(decay) in [1e-12, 0.5]
    lo, hi = np.log(1e-12), np.log(0.5)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        angle = theory.muon_angular_update(np.exp(mid), 1.0, args.beta1, matrix, nesterov=args.nesterov)
        lo, hi = (mid, hi) if angle < target else (lo, mid)
    return np.exp(0.5 * (lo + hi)) / wd


def _lr_schedule(args):
    """Per-step learning rates of the chosen schedule (peak = --lr), after the warmup.

    The warmup is wsd's: lr s / warmup at steps s = 1, ..., warmup - 1 and the
    peak at step warmup, where the schedule starts; it ends at the last step
    (so --warmup 0 and 1 are the same: the peak at step 1)."""
    from . import schedules

    lr, warmup, floor = args.lr, args.warmup, (args.floor or 0.0) * args.lr
    if args.schedule == "wsd":
        if args.decay_start is None or not warmup <= args.decay_start < args.steps:
            raise InputError(f"--decay-start must lie in [--warmup, --steps) = [{warmup}, {args.steps}) with "
                             f"--schedule wsd, got {args.decay_start}")
        return schedules.wsd(args.steps, lr, warmup, args.decay_start, floor)
    if warmup >= args.steps:
        raise InputError(f"--warmup must lie in [0, --steps) = [0, {args.steps}), got {warmup}")
    rest = args.steps - max(warmup, 1) + 1  # from the peak at step max(warmup, 1) to the end
    if args.schedule == "constant":
        after = schedules.constant(rest, lr)
    elif args.schedule == "linear":
        after = schedules.linear(rest, lr, floor)
    else:
        after = schedules.cosine(rest, lr, floor)
    if warmup <= 1:
        return after
    # lr s / warmup for s = 1, ..., warmup: linear from lr / warmup to the peak
    return np.concatenate([schedules.linear(warmup, lr / warmup, lr)[:-1], after])


def _decay_per_step(convention, lr_t, wd, peak):
    """The decay per step (theta's factor 1 - decay) of each weight-decay
    convention at learning rate lr_t (a number or one per step); WD_RULES in words."""
    if convention == "pytorch":
        return lr_t * wd
    if convention == "independent":
        return lr_t * 0.0 + wd
    if convention == "lh":
        return lr_t / peak * wd
    return lr_t * wd * (lr_t / peak)


def _stationary(args, decay):
    """(book's best, mean field, update RMS) of the stationary weight RMS at the peak lr,
    whose decay per step is ``decay``."""
    from . import theory

    # the theory's wd is PyTorch's: the decay per step over the lr
    lr, wd, b1 = args.lr, decay / args.lr, args.beta1
    if args.optimizer == "adamw":
        best = theory.adamw_weight_rms(lr, wd, beta1=b1, method="exact-sums")
        return best, theory.adamw_weight_rms(lr, wd, beta1=b1), theory.adam_update_rms(b1)
    if args.optimizer == "signsgdm":
        best = theory.signsgdmw_weight_rms(lr, wd, b1, method="arcsine")
        return best, theory.signsgdmw_weight_rms(lr, wd, b1), 1.0
    if args.optimizer == "lion":
        return theory.lion_weight_rms(lr, wd, b1, args.beta2), None, 1.0
    shape = _muon_shape(args)
    if len(shape) == 4:
        raise InputError(f"--shape with 4 numbers: torch.optim.Muon refuses 4-D weights (p.ndim != 2); give the "
                         f"matrix it would see, e.g. --shape {shape[0]} {shape[1] * shape[2] * shape[3]} as Keller "
                         "Jordan's muon_update flattens it")
    # torch's convention: decay by lr wd with the lr before adjustment, step by the adjusted lr;
    # in the book's form theta <- theta - eta (u + lambda theta): eta = lr_adj, lambda = decay / lr_adj
    fn = None if args.adjust_lr_fn == "none" else args.adjust_lr_fn
    eta = theory.torch_muon_lr(lr, shape, fn)
    lam = decay / eta
    best = theory.muon_weight_rms(eta, lam, b1, shape, nesterov=args.nesterov)
    linear = theory.muon_weight_rms(eta, lam, b1, shape, nesterov=args.nesterov, method="linear")
    return best, linear, theory.muon_update_rms(shape) * eta / lr


def _refuse_unused(args):
    """weight-rms flags that would not enter the answer asked for: refused, not ignored."""
    if args.optimizer == "muon" and args.shape is None:
        raise InputError("--shape N M is required with --optimizer muon (two whole numbers >= 1)")
    if args.optimizer != "muon" and args.shape is not None:
        raise InputError(f"--shape is for --optimizer muon only, got --optimizer {args.optimizer}")
    if args.optimizer != "muon" and (args.nesterov is not None or args.adjust_lr_fn is not None):
        raise InputError(f"--nesterov/--no-nesterov and --adjust-lr-fn are for --optimizer muon only, got "
                         f"--optimizer {args.optimizer}")
    if args.optimizer != "lion" and args.beta2 is not None:
        why = ("its weight RMS here is the mean field, a function of --beta1 alone" if args.optimizer == "adamw"
               else "it has no second moment")
        raise InputError(f"--beta2 {args.beta2:g} does not enter --optimizer {args.optimizer}: {why}")
    if args.steps is None:
        for flag, value in (("--schedule", None if args.schedule == "constant" else args.schedule),
                            ("--warmup", args.warmup), ("--theta0-rms", args.theta0_rms)):
            if value is not None:
                raise InputError(f"{flag} {value} needs --steps (a whole number >= 1): without it only the "
                                 "equilibrium is given")
    if args.floor is not None and args.schedule == "constant":
        raise InputError(f"--floor {args.floor:g} is for a decaying --schedule (linear, cosine, wsd), got "
                         "--schedule constant")
    if args.decay_start is not None and args.schedule != "wsd":
        raise InputError(f"--decay-start {args.decay_start} is for --schedule wsd only, got --schedule "
                         f"{args.schedule}")
    scheduled = args.schedule != "constant" or (args.warmup or 0) > 1
    if scheduled and args.optimizer != "adamw":
        what = f"--schedule {args.schedule}" if args.schedule != "constant" else f"--warmup {args.warmup}"
        raise InputError(f"{what} is covered for --optimizer adamw only (the schedules chapter); got --optimizer "
                         f"{args.optimizer}")


def _weight_rms(args):
    from . import theory

    _refuse_unused(args)
    if args.beta1 is None:
        # the default of the library the command models: torch.optim.Muon's momentum is 0.95 (Keller
        # Jordan's and Moonlight's Muon too), with nesterov=True
        args.beta1 = 0.95 if args.optimizer == "muon" else 0.9
    if args.optimizer == "muon":
        args.nesterov = True if args.nesterov is None else args.nesterov
        args.adjust_lr_fn = "none" if args.adjust_lr_fn is None else args.adjust_lr_fn
    if args.optimizer == "lion" and args.beta2 is None:
        args.beta2 = LION_BETA2
    args.warmup = 0 if args.warmup is None else args.warmup
    theta0_rms = 0.0 if args.theta0_rms is None else args.theta0_rms
    convention = args.wd_convention
    # at the peak: the largest decay per step of every convention along any schedule
    decay = float(_decay_per_step(convention, args.lr, args.wd, args.lr))
    if decay >= 1:
        raise InputError(f"--wd {args.wd:g} gives a decay per step of {decay:g} at the peak --lr {args.lr:g} "
                         f"({convention}: {WD_RULES[convention]}); it must be < 1")
    best, mean_field, update = _stationary(args, decay)
    best = float(best)
    values = {"stationary_rms": best,
              "stationary_rms_mean_field": None if mean_field is None else float(mean_field)}
    notes = [f"{args.optimizer}, weight decay {convention}: {WD_RULES[convention]} ({WD_SOURCES[convention]}), "
             "peak = --lr; pure-noise "
             "gradients (weight-RMS and beyond-adamw chapters); stationary values at the peak lr"]
    if args.optimizer == "adamw":
        notes.append("stationary_rms: the mean field kept exact in beta3 (Wen et al.'s form); simulated Adam sits "
                     "slightly lower, by its long-run update variance (weight-RMS chapter)")
    if args.optimizer == "muon":
        notes.append(f"muon as torch.optim.Muon runs it: {'Nesterov' if args.nesterov else 'EMA'} momentum, "
                     f"adjust_lr_fn {args.adjust_lr_fn} (torch's None is 'original'), the decay per step with the "
                     "lr before adjustment, step by the adjusted lr; exact msign (torch's bf16 Newton-Schulz moves "
                     "the update RMS by the size-dependent ratio of the beyond-adamw chapter); stationary_rms: the "
                     "matrix arcsine law from the shipped table; stationary_rms_mean_field: the update taken as "
                     "correlated like its input (Wen et al.'s assumption)")
    if args.optimizer == "lion":
        values["stationary_rms_kosson"] = float(theory.lion_weight_rms(args.lr, decay / args.lr, args.beta1,
                                                                       args.beta2, method="kosson"))
        notes.append("lion: no mean-field form; stationary_rms is the arcsine law (exact for Gaussian noise), "
                     "stationary_rms_kosson Kosson et al.'s linearised norm (beyond-adamw chapter)")
    if args.steps is not None:
        lr_t = _lr_schedule(args)
        decay_t = _decay_per_step(convention, lr_t, args.wd, args.lr)
        if args.optimizer == "adamw":
            # the whole momentum kernel of the schedules chapter, at the mean field's long-run variance
            final = theory.weight_rms_schedule(lr_t, decay=decay_t, theta0_rms=theta0_rms, method="kernel",
                                               beta1=args.beta1)[-1]
        else:
            # updates independent of the weights: the discrete sum with the rule's long-run
            # variance, the one that gives its stationary RMS (weight-RMS chapter, eq. long-run)
            variance = best**2 * (1.0 - (1.0 - decay) ** 2) / args.lr**2
            final = theory.weight_rms_schedule(lr_t, decay=decay_t, theta0_rms=theta0_rms, method="sum",
                                               long_run_variance=variance)[-1]
            notes.append("final_rms: the start forgotten as (1 - decay)^(2 steps), the updates taken as "
                         "stationary from step 1 (the momentum's start-up is left out)")
        values["final_rms"] = float(final)
        warm = f" (the first {args.warmup} a linear warmup)" if args.warmup > 1 and args.schedule != "wsd" else ""
        notes.append(f"final_rms after {args.steps} steps of a {args.schedule} schedule{warm}, from theta0_rms = "
                     f"{theta0_rms:g}")
    else:
        values["final_rms"] = None
        notes.append("final_rms n/a: give --steps")
    values["timescale_steps"] = float(1.0 / decay)
    if args.steps_per_epoch is not None:
        values["timescale_epochs"] = values["timescale_steps"] / args.steps_per_epoch
    wd = decay / args.lr  # the theory's wd (PyTorch's) at the peak
    values["relaxation_time_steps"] = float(theory.relaxation_time(args.lr, wd))
    cos = theory.cos_theta_u(args.lr, wd, update, best)
    values["angular_update"] = float(theory.angular_update(args.lr, wd, update, best, cos))
    # first order: lr U / W at the mean-field W (for AdamW sqrt(2 lr wd (1-beta1)/(1+beta1)), Kosson et al.'s)
    values["angular_update_mean_field"] = None if mean_field is None else float(args.lr * update / mean_field)
    notes.append("timescale_steps = 1/decay at the peak, the weights' memory; relaxation_time_steps: the "
                 "e-folding time of their mean square, about half of it; angles in radians per step")
    return values, notes


def _wd_convert(args):
    uses_peak = {args.from_, args.to} & {"lh", "adamc"}
    if args.peak_lr is not None and not uses_peak:
        raise InputError(f"--peak-lr {args.peak_lr:g} is for --from or --to lh or adamc (the conventions that "
                         f"scale the decay by lr/peak), got --from {args.from_} --to {args.to}")
    peak = args.lr if args.peak_lr is None else args.peak_lr
    if peak < args.lr:
        raise InputError(f"--peak-lr must be >= --lr = {args.lr:g} (the schedule's peak), got {peak:g}")
    # the decay per step of the source convention at this lr, then the target's wd with the same
    # decay: each convention is linear in wd
    decay = float(_decay_per_step(args.from_, args.lr, args.wd, peak))
    if decay >= 1:
        raise InputError(f"the decay per step must be < 1, got {decay:g} from --wd {args.wd:g}")
    converted = decay / float(_decay_per_step(args.to, args.lr, 1.0, peak))
    values = {"wd": converted, "decay_per_step": decay, "timescale_steps": None if decay == 0 else 1.0 / decay}
    at = f"lr_t = --lr {args.lr:g}" + (f", peak = --peak-lr {peak:g}" if uses_peak else "")
    notes = [f"held fixed: the decay per step at {at}, so the weights' memory 1/decay is the same",
             *(f"{name}: {WD_RULES[name]} ({WD_SOURCES[name]})" for name in dict.fromkeys((args.from_, args.to)))]
    if decay == 0:
        notes.append("timescale_steps n/a: --wd 0 decays nothing, so the memory is infinite")
    return values, notes


def _report(args):
    """The summary table of a watch's log (``Watch(log=...)``); printed here,
    since its rows are not the flat values of the other subcommands."""
    from . import report

    try:
        logged = report.read_log(args.log)
        summary = report.summarize(*logged, start=args.start, muon_law=args.muon_law)
    except ValueError as err:  # report.LogError, or a start outside the records
        raise InputError(str(err)) from None
    if args.json:
        rows = []
        for row in summary.rows:
            # an undefined statistic (nan) as null, with a note in the row's notes
            values, notes = _finite_values({k: v for k, v in row.items() if k != "notes"}, row["notes"],
                                           why="undefined (nan) for this tensor in this window")
            rows.append({**values, "notes": notes})
        out = {"window": list(summary.window), "rows": rows, "notes": summary.notes}
        print(json.dumps(_finite(out), indent=2, allow_nan=False))
    else:
        print(summary.to_markdown())
    return None


def _finite_values(values, notes, prefix="", why=None):
    """The values with each nan or inf as None (n/a, JSON's null), and a note
    for each saying why; the same in the table and in JSON."""
    out, notes = {}, list(notes)
    for key, value in values.items():
        if isinstance(value, dict):
            out[key], notes = _finite_values(value, notes, prefix=f"{prefix}{key}.", why=why)
        elif isinstance(value, (float, np.floating)) and not np.isfinite(value):
            out[key] = None
            reason = why or f"its computation gives {float(value)} in float64 at these inputs (an overflow)"
            notes.append(f"{prefix}{key} n/a: {reason}, not a number to print")
        else:
            out[key] = value
    return out, notes


def _finite(value):
    """The rows with nan (an undefined statistic) as null, tuples as lists."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


# ---------------------------------------------------------------- parser


def build_parser():
    parser = _Parser(prog="optstats", description="The book's answers from the command line: equilibrium statistics "
                     "of EMA optimizers (Adam/AdamW, Lion, SignSGDM, Muon) under pure-noise gradients.")
    parser.add_argument("--version", action="version", version=f"optstats {__version__}",
                        help="print the package's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    once_bool = _once(argparse.BooleanOptionalAction)
    rules = ("weight-decay conventions, at a step with learning rate lr_t (peak: the schedule's peak):\n"
             + "\n".join(f"  {name:11s} {rule:48s} {WD_SOURCES[name]}" for name, rule in WD_RULES.items()))

    def add(name, helptext, epilog=None):
        p = sub.add_parser(name, help=helptext, description=helptext, epilog=epilog)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return p

    p = add("update-rms", "Adam's stationary update RMS (exact, second order, mean field)")
    p.add_argument("--beta1", type=BETA, default=0.9, help="Adam's beta1, in [0, 1) (default 0.9)")
    p.add_argument("--beta2", type=BETA2, default=0.95, help="Adam's beta2, in (0, 1) (default 0.95)")
    p.add_argument("--snr", type=NONNEGATIVE, default=0.0,
                   help="gradient signal-to-noise ratio mu^2/sigma^2, >= 0 (default 0: pure noise)")
    p.add_argument("--eps-over-sigma", type=NONNEGATIVE, default=None,
                   help="Adam's eps over the gradient noise's std, >= 0 (default 0; or give --eps and "
                   "--exp-avg-sq)")
    p.add_argument("--eps", type=NONNEGATIVE, default=None,
                   help="Adam's eps, >= 0, with --exp-avg-sq instead of --eps-over-sigma (default: none)")
    p.add_argument("--exp-avg-sq", type=POSITIVE, default=None,
                   help="a logged exp_avg_sq (torch's v) of one coordinate, positive, with --eps: sigma = "
                   "sqrt(exp_avg_sq / (1 + snr)), so sigma = sqrt(vhat) for a gradient whose noise dominates its "
                   "mean; holds at equilibrium, once the bias correction has faded (beta2^t << 1, so exp_avg_sq "
                   "= vhat), for gradients iid in time (default: none)")
    p.set_defaults(run=_update_rms)

    p = add("snr", "the gradient SNR read back from a logged update RMS or momentum ratio")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--update-rms", type=FRACTION, help="Adam's logged update RMS, in [0, 1)")
    which.add_argument("--momentum-ratio", type=FRACTION, help="|m_t| / |g_t| of the EMA momentum, in [0, 1)")
    p.add_argument("--beta1", type=BETA, default=0.9, help="beta1, in [0, 1) (default 0.9)")
    p.add_argument("--beta2", type=BETA2, default=None,
                   help="Adam's beta2, in (0, 1), with --update-rms only (default 0.95)")
    p.set_defaults(run=_snr)

    p = add("muon-scale", "the factor that gives Muon's update Adam's update RMS, and the common conventions")
    p.add_argument("--beta1", type=BETA, default=0.9, help="beta1 of the Adam to match, in [0, 1) (default 0.9)")
    p.add_argument("--beta2", type=BETA2, default=0.95, help="beta2 of the Adam to match, in (0, 1) (default 0.95)")
    p.add_argument("--shape", type=_whole(1), nargs="+", required=True, metavar="N",
                   help="the weight's shape: fan-out (PyTorch's rows) and fan-in, or out, in, kh, kw of a "
                   "convolution (required)")
    p.add_argument("--convention", choices=("all", *MUON_CONVENTIONS), default="all",
                   help="which library's scale to compare, by its own mode name (default all)")
    p.add_argument("--adam-lr", type=POSITIVE, default=None,
                   help="an AdamW lr, > 0: also print the Muon lr with its update RMS and the one with its "
                   "angle per step (default: none)")
    p.add_argument("--wd", type=POSITIVE, default=None,
                   help="weight decay of both, PyTorch's convention, > 0, with --adam-lr only (default 0.1)")
    p.add_argument("--nesterov", action=once_bool, default=None,
                   help="Muon's momentum for the angle, with --adam-lr only (default: Nesterov, as torch)")
    p.set_defaults(run=_muon_scale)

    p = add("weight-rms", "the weight RMS at the end of a schedule and at equilibrium, the time to get there, "
            "and the angle the weights turn per step", epilog=rules)
    p.add_argument("--lr", type=POSITIVE, required=True, help="(peak) learning rate, > 0 (required)")
    p.add_argument("--wd", type=POSITIVE, required=True,
                   help="weight decay in the convention of --wd-convention, > 0 (required)")
    p.add_argument("--wd-convention", choices=WD_CONVENTIONS, default="pytorch",
                   help="how --wd enters the update, with peak = --lr (the rules below; default pytorch)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw", help="the update rule (default adamw)")
    p.add_argument("--beta1", type=BETA, default=None,
                   help="beta1 (muon: its momentum), in [0, 1) (default 0.9; 0.95 for muon, as torch.optim.Muon)")
    p.add_argument("--beta2", type=BETA2, default=None,
                   help="lion's beta2, in (0, 1) (default 0.99; the other rules here do not use one)")
    p.add_argument("--shape", type=_whole(1), nargs="+", default=None, metavar="N",
                   help="Muon's weight shape, fan-out then fan-in (required with --optimizer muon)")
    p.add_argument("--nesterov", action=once_bool, default=None,
                   help="muon: Nesterov momentum or EMA momentum (default: Nesterov, as torch.optim.Muon)")
    p.add_argument("--adjust-lr-fn", choices=ADJUST_LR_FNS, default=None,
                   help="muon: torch.optim.Muon's adjust_lr_fn; none is torch's None = original (default none)")
    p.add_argument("--schedule", choices=SCHEDULES, default="constant",
                   help="learning-rate schedule from the peak --lr (default constant)")
    p.add_argument("--steps", type=_whole(1), default=None,
                   help="length of the run in steps, >= 1 (default: none, and only the equilibrium is given)")
    p.add_argument("--warmup", type=_whole(0), default=None,
                   help="linear warmup steps, >= 0, < --steps, for every schedule: lr s / warmup at step s, the "
                   "peak at step --warmup, where the schedule starts (with --steps; default 0)")
    p.add_argument("--decay-start", type=_whole(0), default=None,
                   help="wsd: the step the decay starts, in [--warmup, --steps) (required with wsd)")
    p.add_argument("--floor", type=_in(0.0, 1.0, high_open=False), default=None,
                   help="final learning rate of a linear, cosine or wsd schedule as a fraction of the peak, in "
                   "[0, 1] (default 0)")
    p.add_argument("--theta0-rms", type=NONNEGATIVE, default=None,
                   help="RMS of the initial weights, >= 0, with --steps (default 0)")
    p.add_argument("--steps-per-epoch", type=_whole(1), default=None,
                   help="steps per epoch, >= 1, to give the timescale in epochs too (default: none)")
    p.set_defaults(run=_weight_rms)

    p = add("wd-convert", "convert a weight decay between PyTorch's, independent, Loshchilov-Hutter's and "
            "AdamC's conventions at one learning rate", epilog=rules)
    p.add_argument("--lr", type=POSITIVE, required=True, help="the learning rate lr_t, > 0 (required)")
    p.add_argument("--wd", type=NONNEGATIVE, required=True, help="the weight decay to convert, >= 0 (required)")
    p.add_argument("--from", dest="from_", choices=WD_CONVENTIONS, required=True,
                   help="its convention (the rules below; required)")
    p.add_argument("--to", choices=WD_CONVENTIONS, required=True, help="the convention to convert to (required)")
    p.add_argument("--peak-lr", type=POSITIVE, default=None,
                   help="lh, adamc: the schedule's peak learning rate, >= --lr (default --lr)")
    p.set_defaults(run=_wd_convert)

    p = add("report", "a watch's log (optstats.probe.Watch(log=...)) against the theory: per tensor the "
            "measured window means, the predictions and their difference")
    p.add_argument("log", metavar="RUN.jsonl", help="the JSON-lines log a Watch wrote")
    p.add_argument("--start", type=_whole(0), default=None,
                   help="first step of the window, a recorded step (default: the last half of the records)")
    p.add_argument("--muon-law", action=argparse.BooleanOptionalAction, default=True,
                   help="Muon's weight RMS, cos and angle from the matrix law in torch's convention (default on; "
                        "--no-muon-law leaves them out)")
    p.set_defaults(run=_report)
    return parser


# ---------------------------------------------------------------- output


def _table(values, notes):
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {'n/a' if v is None else format(v, '.6g')}" for k, v in value.items())
            # wrapped for an 80-column terminal, continued under the values
            lines.append(textwrap.fill(inner, width=78, initial_indent=f"{key:28s} ", subsequent_indent=" " * 29,
                                       break_on_hyphens=False, break_long_words=False))
        else:
            lines.append(f"{key:28s} {'n/a' if value is None else format(value, '.6g')}")
    for note in notes:
        # wrapped for an 80-column terminal
        lines.append(textwrap.fill(note, width=78, initial_indent="  note: ", subsequent_indent="        ",
                                   break_on_hyphens=False))
    return "\n".join(lines)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # a float64 overflow becomes inf or nan, which _finite_values names: no warning on stderr
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            answer = args.run(args)
    except ValueError as err:
        # a value the theory refuses (InputError, or a range only the theory knows)
        message = " ".join(str(err).split())
        print(f"optstats {args.command}: error: {message}", file=sys.stderr)
        return 2
    if answer is None:  # the subcommand printed its own output
        return 0
    values, notes = _finite_values(*answer)
    if args.json:
        print(json.dumps({**values, "notes": notes}, indent=2, allow_nan=False))
    else:
        print(_table(values, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
