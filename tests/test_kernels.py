"""The benchmark kernels (benchmarks/kernels/) are real programs: each one, jitted,
must give the plain interpreter's result on every call, in a process of its own
so that a crash is a failed test, not a dead test run."""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import alternate  # noqa: E402  (benchmarks/alternate.py)
import check  # noqa: E402  (benchmarks/check.py)
import suite  # noqa: E402


@pytest.mark.parametrize("name", suite.NAMES)
def test_kernel_matches_the_interpreter(name):
    verdict = check.isolated(name)
    assert verdict.status == "ok", "\n".join(verdict.lines())


def test_alternating_timing_pairs_the_two_variants():
    """benchmarks/alternate.py (the suite's alternating column): pairs of plain
    and jitted runs of int_loop, whose jitted copy is many times faster."""
    ratio, times = alternate.paired_ratio("int_loop", 3)
    assert len(times) == 3 and all(len(pair) == 2 and min(pair) > 0 for pair in times)
    assert ratio > 2
    assert alternate.isolated("int_loop", 2) > 2
