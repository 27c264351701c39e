"""Alternating timing: a kernel's plain and jitted copies timed in turn, in pairs, in one process.

    python3 benchmarks/alternate.py [--pairs N] [--json] [NAME ...]

pyperf times the plain and the jitted variant of a kernel one after the other, a minute
or more apart; on a shared machine whose speed drifts, the ratio of their means drifts
with it (by 10-20 % on the machine the README's numbers come from).  Here every jitted
run follows a plain one, so each pair sees the same machine, and the median of the pairs'
ratios is what is reported: a complement to pyperf's table, which benchmarks/run.py
prints beside it.  (Both copies are warmed first: the jitted one compiles and
recompiles during its first runs.)
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import suite

WARMUP_RUNS = 5
TIMEOUT = 600  # seconds for one kernel's pairs


def paired_ratio(name, pairs):
    """The median over `pairs` pairs of plain time / jitted time, and the pairs' times."""
    modules = [suite.load(name, variant) for variant in suite.VARIANTS]
    for module in modules:
        for _ in range(WARMUP_RUNS):
            suite.run(module)
    times = []
    for _ in range(pairs):
        pair = []
        for module in modules:
            started = time.perf_counter()
            suite.run(module)
            pair.append(time.perf_counter() - started)
        times.append(pair)
    return statistics.median(plain / jit for plain, jit in times), times


def isolated(name, pairs):
    """paired_ratio(name, pairs)'s ratio measured in a new process, or None when it failed."""
    command = [sys.executable, __file__, "--json", "--pairs", str(pairs), name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None
    printed = done.stdout.splitlines()
    if done.returncode != 0 or not printed:
        return None
    return json.loads(printed[-1])["ratio"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"kernels to time (default: all: {', '.join(suite.NAMES)})")
    parser.add_argument("--pairs", type=int, default=20, help="pairs of runs (default 20)")
    parser.add_argument("--json", action="store_true", help="print one JSON result a line")
    args = parser.parse_args()
    try:
        names = suite.select(args.names)
    except ValueError as error:
        parser.error(str(error))
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    for name in names:
        ratio, times = paired_ratio(name, args.pairs)
        if args.json:
            print(json.dumps({"name": name, "ratio": ratio, "times": times}), flush=True)
        else:
            plain = statistics.median(p for p, _ in times)
            jit = statistics.median(j for _, j in times)
            print(f"{name:<14} plain {1e3 * plain:8.2f} ms  jit {1e3 * jit:8.2f} ms  "
                  f"median of {args.pairs} paired ratios {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
