"""textwrap, colorsys and fractions jitted with cpjit.jit_module give the plain modules' results."""

import pytest
from stdlib_cases import CASES, run_module


@pytest.mark.parametrize("name", sorted(CASES))
def test_stdlib_module_matches_plain(name):
    report = run_module(name)
    assert not report.mismatches, report.mismatches
    assert report.compiled >= report.called // 2, report
    assert report.called > 0
