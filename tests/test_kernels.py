"""The benchmark kernels (benchmarks/kernels/) are real programs: each one, jitted,
must give the plain interpreter's result on every call, in a process of its own
so that a crash is a failed test, not a dead test run."""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import check  # noqa: E402  (benchmarks/check.py)
import suite  # noqa: E402


@pytest.mark.parametrize("name", suite.NAMES)
def test_kernel_matches_the_interpreter(name):
    verdict = check.isolated(name)
    assert verdict.status == "ok", "\n".join(verdict.lines())
