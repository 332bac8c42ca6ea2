"""`make test-portable`: the tests pass under other float kernels, and still
catch a broken claim under each.

One machine has one CPU kind; this makes the variation another CPU would
bring. Under each kernel configuration below it runs the tests that touch
torch (the probe, the network, the re-run check of the stored runs) and nbval
over every chapter, which must pass; then, in a copy of the tree with one
planted error each, the test that guards against that error, which must fail.
Exit status 0 only if every expectation holds; a table says what ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
#: tests/numerics.env's torch-side pins (torch's CPU build uses MKL, oneDNN
#: and ATen's own vectorised kernels); the numpy and OpenBLAS pins serve the
#: numpy chapters, whose digits nbval compares
TORCH_PINS = ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
ALL_PINS = tuple(
    line.partition("=")[0]
    for line in (ROOT / "tests" / "numerics.env").read_text().splitlines()
    if line and not line.startswith("#")
)
#: name -> (variables to set, variables to remove, whole nbval suite or only the torch-fed chapter)
CONFIGS = {
    # torch's scalar kernels, oneDNN without AVX, MKL choosing its own path
    "scalar-kernels": ({"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "AUTO"},
                       (), True),
    # torch as it runs unpinned on this CPU (numpy keeps its pins)
    "torch-unpinned": ({}, TORCH_PINS, True),
    # tests/numerics.env not applied at all
    "no-pins": ({}, ALL_PINS, False),
}
#: every unit test file that runs torch (they import it or skip without it)
TORCH_TESTS = sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
    if 'importorskip("torch")' in p.read_text() or "\nimport torch" in p.read_text()
)
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg"]
#: planted errors: (name, file, text, replacement, the test that must fail)
MUTATIONS = [
    ("weight decay x1.02 in training", "src/optstats/network.py",
     '"weight_decay": config.wd}', '"weight_decay": 1.02 * config.wd}',
     ["tests/test_stored_runs.py", "-k", "early"]),
    ("learning rate x1.02 in training", "src/optstats/network.py",
     'group["lr"] = float(self.lr[t - 1])', 'group["lr"] = 1.02 * float(self.lr[t - 1])',
     ["tests/test_stored_runs.py", "-k", "early"]),
    ("a wrong sign in the correlated model", "src/optstats/theory/correlated.py",
     "return 1.0 + 2.0 * lag_sum", "return 1.0 - 2.0 * lag_sum",
     [*NBVAL, "book/real-network.ipynb"]),
]


def environment(config: str, tree: Path) -> dict:
    set_, unset, _ = CONFIGS[config]
    env = dict(os.environ)
    for line in (ROOT / "tests" / "numerics.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    for key in unset:
        env.pop(key, None)
    env.update(set_)
    env["PYTHONPATH"] = str(tree / "src")  # the tree's package, not the installed one
    return env


def pytest(args, env, cwd) -> tuple[bool, str]:
    done = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:randomly", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.strip()]
    return done.returncode == 0, lines[-1] if lines else done.stderr.strip()[-200:]


def copy_tree(destination: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def plant(tree: Path, path: str, text: str, replacement: str) -> None:
    source = (tree / path).read_text()
    if source.count(text) != 1:
        raise SystemExit(f"mutation target not found once in {path}: {text!r} (update tests/portable.py)")
    (tree / path).write_text(source.replace(text, replacement))


def report(row) -> None:
    config, what, want, got, last = row
    mark = "ok" if want == got else "WRONG"
    print(f"{mark:5} {config:15} {what:44} expected {want}, got {got}: {last}", flush=True)


def main() -> int:
    rows, ok = [], True
    begin = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        for config, (_, _, whole_book) in CONFIGS.items():
            env = environment(config, ROOT)
            book = ["book"] if whole_book else ["book/real-network.ipynb"]
            for what, args in (("torch tests", TORCH_TESTS), ("nbval " + " ".join(book), [*NBVAL, "-n", "2",
                                                                                        "--dist", "loadfile", *book])):
                passed, last = pytest(args, env, ROOT)
                ok &= passed
                rows.append((config, what, "pass", "pass" if passed else "FAIL", last))
                report(rows[-1])
            for name, path, text, replacement, args in MUTATIONS:
                tree = Path(scratch) / f"{config}-{len(rows)}"
                copy_tree(tree)
                plant(tree, path, text, replacement)
                passed, last = pytest(args, environment(config, tree), tree)
                ok &= not passed
                rows.append((config, f"planted: {name}", "fail", "pass" if passed else "fail", last))
                report(rows[-1])
                shutil.rmtree(tree)
    held = sum(r[2] == r[3] for r in rows)
    print(f"expectations held in {time.monotonic() - begin:.0f} s; under each configuration a planted error "
          "must make its test fail, so 'passed' counts expectations, not test runs")
    print(f"test-portable: {held} passed, {len(rows) - held} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
