"""How much of some pure-Python stdlib modules runs as machine code under cpjit.jit_module.

    python3 benchmarks/stdlib_coverage.py

Each module's functions and methods are jitted in a fresh copy of the module and
called on the cases of tests/stdlib_cases.py, against a plain copy: the report
gives, per module, the functions compiled among those called, the side exits taken,
the instructions left to the interpreter, and whether every result matched.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import stdlib_cases  # noqa: E402  (tests/stdlib_cases.py)


def main():
    ok = True
    print(f"{'module':<10} {'functions':>9} {'called':>6} {'compiled':>8} {'calls':>5} "
          f"{'side exits':>10}  results   left to the interpreter")
    for name in stdlib_cases.CASES:
        report = stdlib_cases.run_module(name)
        left = ", ".join(f"{op} x{count}" for op, count in sorted(report.unsupported.items()))
        verdict = "match" if not report.mismatches else f"{len(report.mismatches)} DIFFER"
        ok &= not report.mismatches
        print(f"{report.module:<10} {report.functions:>9} {report.called:>6} {report.compiled:>8} "
              f"{report.calls:>5} {report.side_exits:>10}  {verdict:<9} {left or '-'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
