"""Run the benchmarks: every one, or those named.

    .venv/bin/python -m tests.bench [asr] [vad] [live] [NAME...] [-- ARGS...]

Each name is tests/bench/<name>_bench.py with a main(argv) -> int, imported only
when it runs. asr, vad and live always run first when no name is given (one whose
file is absent is skipped with a message), then every other *_bench.py found.
ARGS after `--` go to every bench that runs (e.g. `-- --check`). Exit status: 0
when every bench that ran returned 0, else the highest status; 2 for an unknown name.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

CORE_BENCHES = ("asr", "vad", "live")
BENCH_DIR = Path(__file__).resolve().parent


def bench_names() -> list[str]:
    """The core benches, then any other tests/bench/*_bench.py in name order."""
    found = [path.name[: -len("_bench.py")] for path in sorted(BENCH_DIR.glob("*_bench.py"))]
    return list(CORE_BENCHES) + [name for name in found if name not in CORE_BENCHES]


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Bench names before `--`, pass-through arguments after it."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def load_bench(name: str):
    """The bench's module, or None when its file does not exist (yet)."""
    module_name = f"tests.bench.{name}_bench"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the bench exists but needs something missing: that is an error
            raise
        return None


def run_bench(name: str, module, passed: list[str]) -> int:
    try:
        return int(module.main(list(passed)) or 0)
    except SystemExit as exc:  # argparse errors, or a bench giving up with a message
        if isinstance(exc.code, str):
            sys.stderr.write(f"{exc.code}\n")
            return 2
        return int(exc.code or 0)


def main(argv: list[str] | None = None) -> int:
    names, passed = split_argv(list(sys.argv[1:] if argv is None else argv))
    if any(name in ("-h", "--help") for name in names):
        sys.stdout.write(__doc__)
        return 0
    known = bench_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        sys.stderr.write(f"bench: unknown benchmark {', '.join(unknown)} (known: {', '.join(known)})\n")
        return 2
    statuses = {}
    for name in names or known:
        try:
            module = load_bench(name)
        except ImportError as exc:
            sys.stderr.write(f"bench: {name}: cannot import tests/bench/{name}_bench.py: {exc}\n")
            statuses[name] = 1
            continue
        if module is None:
            sys.stderr.write(f"bench: skipping {name}: tests/bench/{name}_bench.py does not exist\n")
            continue
        sys.stdout.write(f"\n=== {name} bench ===\n")
        sys.stdout.flush()
        statuses[name] = run_bench(name, module, passed)
    failed = {name: status for name, status in statuses.items() if status}
    if failed:
        sys.stderr.write("bench: " + ", ".join(f"{n} exited {s}" for n, s in failed.items()) + "\n")
    return max(statuses.values(), default=0)


if __name__ == "__main__":
    sys.exit(main())
