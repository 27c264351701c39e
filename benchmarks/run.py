"""Run the benchmark suite: every kernel in the plain interpreter and jitted, in one pyperf run.

    python3 benchmarks/run.py [--fast] [pyperf options] [NAME ...]

First each jitted kernel is checked against the plain interpreter (check.py, one
process per kernel); a kernel whose jitted copy crashes or computes a wrong result
is reported and its jitted variant not timed.  Then pyperf times NAME-plain and
NAME-jit for each kernel, one after the other.  The results go to results/:
suite.json (both variants), plain.json and jit.json (the same benchmark names, for
`python3 -m pyperf compare_to benchmarks/results/plain.json benchmarks/results/jit.json`),
and a table of the speedups closes the run, with beside pyperf's ratio of means the
median ratio of plain and jitted runs timed in turn in one process (alternate.py),
which a machine whose speed drifts during the run moves much less.
"""

import argparse
import os
import statistics
import subprocess
from pathlib import Path

import cpjit
import pyperf

import alternate
import check
import suite

RESULTS = Path(__file__).resolve().parent / "results"
ALTERNATE_PAIRS = 20  # pairs of runs per kernel for the alternating ratio (alternate.py)
ALTERNATE_PAIRS_FAST = 6  # with --fast


class Timer:
    """The time function of one variant of one kernel; the kernel is loaded at the
    first call, so only in the worker processes that time it."""

    def __init__(self, name, variant):
        self.name = name
        self.variant = variant
        self.module = None

    def __call__(self, loops):
        if self.module is None:
            self.module = suite.load(self.name, self.variant)
        function = suite.main_function(self.module)
        args = self.module.ARGS
        started = pyperf.perf_counter()
        for _ in range(loops):
            function(*args)
        return pyperf.perf_counter() - started


def _forward(command, args):
    """Give the worker processes the same benchmarks, in the same order."""
    if args.skip_jit:
        command.extend(["--skip-jit", args.skip_jit])
    command.extend(args.names)


def _check_all(names):
    print("Checking the jitted kernels against the plain interpreter:")
    verdicts = {}
    for name in names:
        verdicts[name] = check.isolated(name)
        print("\n".join("  " + line for line in verdicts[name].lines()), flush=True)
    print()
    return verdicts


def _revision():
    """The git revision of the cpjit being measured ("-dirty": with uncommitted changes)."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True, cwd=Path(cpjit.__file__).parent)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def _save(results, revision):
    """suite.json with both variants; plain.json and jit.json with the kernel names."""
    RESULTS.mkdir(exist_ok=True)
    for bench in results.values():
        bench.update_metadata({"cpjit_revision": revision})
    pyperf.BenchmarkSuite(list(results.values())).dump(str(RESULTS / "suite.json"), replace=True)
    for variant in suite.VARIANTS:
        benchmarks = []
        for (name, v), bench in results.items():
            if v == variant:
                bench.update_metadata({"name": name})  # suite.json is written already
                benchmarks.append(bench)
        path = RESULTS / f"{variant}.json"
        if benchmarks:
            pyperf.BenchmarkSuite(benchmarks).dump(str(path), replace=True)
        else:
            path.unlink(missing_ok=True)  # not a stale file from an earlier run


def _format(bench):
    return f"{bench.format_value(bench.mean())} +- {bench.format_value(bench.stdev())}"


def _alternating(names, results, pairs):
    """Each timed kernel's median paired ratio (alternate.py), or None where it failed."""
    print(f"Timing plain and jitted alternately ({pairs} pairs of runs per kernel)...",
          flush=True)
    return {name: alternate.isolated(name, pairs) if (name, "jit") in results else None
            for name in names}


def _table(names, results, verdicts, alternating):
    rows = [("benchmark", "plain", "jit", "speedup", "alternating", "check")]
    ratios, paired = [], []
    for name in names:
        plain, jit = results.get((name, "plain")), results.get((name, "jit"))
        ratio = plain.mean() / jit.mean() if plain and jit else None
        if ratio is not None:
            ratios.append(ratio)
        other = alternating.get(name)
        if other is not None:
            paired.append(other)
        rows.append((name, _format(plain) if plain else "-", _format(jit) if jit else "-",
                     f"{ratio:.2f}x" if ratio else "-", f"{other:.2f}x" if other else "-",
                     verdicts[name].status))
    if ratios:
        rows.append(("geometric mean", "", "", f"{statistics.geometric_mean(ratios):.2f}x",
                     f"{statistics.geometric_mean(paired):.2f}x" if paired else "-",
                     f"({len(ratios)} of {len(names)} benchmarks)"))
    widths = [max(len(row[k]) for row in rows) for k in range(5)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  "
              f"{row[3]:>{widths[3]}}  {row[4]:>{widths[4]}}  {row[5]}")
    plain_json, jit_json = (os.path.relpath(RESULTS / f"{v}.json") for v in suite.VARIANTS)
    print("\nspeedup = plain mean / jit mean (above 1: the JIT is faster); alternating = the "
          "median ratio of\nplain and jitted runs timed in turn in one process "
          "(benchmarks/alternate.py: pyperf's\nvariants run minutes apart, and a drifting "
          "machine moves their ratio).  Significance:")
    print(f"  python3 -m pyperf compare_to {plain_json} {jit_json} --table")


def main():
    runner = pyperf.Runner(add_cmdline_args=_forward)
    runner.argparser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks "
                                  f"to run (default: all: {', '.join(suite.NAMES)})")
    runner.argparser.add_argument("--skip-jit", default="", help=argparse.SUPPRESS)
    args = runner.parse_args()
    try:
        names = suite.select(args.names)
    except ValueError as error:
        runner.argparser.error(str(error))
    if not args.worker:
        verdicts = _check_all(names)
        args.skip_jit = ",".join(name for name in names if not verdicts[name].timed)
    skipped = set(args.skip_jit.split(","))

    timed = [(name, variant) for name in names for variant in suite.VARIANTS
             if variant == "plain" or name not in skipped]
    results = {}
    for name, variant in timed:
        label = f"{name}-{variant}"
        try:
            bench = runner.bench_time_func(label, Timer(name, variant))
        except RuntimeError as error:  # in the master: a worker process failed
            if args.worker:
                raise
            print(f"\nSTOPPED at {label}: {error}\n"
                  f"reproduce with: python3 benchmarks/run.py --fast {name}\n")
            verdicts[name] = check.Verdict(name, f"crashed while timing {label}")
            break
        if bench is not None:
            results[name, variant] = bench
    if args.worker or not results:
        return
    revision = _revision()
    _save(results, revision)
    alternating = _alternating(names, results, ALTERNATE_PAIRS_FAST if args.fast
                               else ALTERNATE_PAIRS)
    print(f"\ncpjit revision {revision}\n")
    _table(names, results, verdicts, alternating)


if __name__ == "__main__":
    main()
