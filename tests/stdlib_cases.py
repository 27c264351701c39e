"""Stdlib pure-Python modules run through cpjit.jit_module, against the plain modules.

Used by tests/test_stdlib.py (correctness) and benchmarks/stdlib_coverage.py
(how much of each module runs as machine code).
"""

import collections
import importlib.util

import cpjit

TEXT = ("The quick brown fox jumps over the lazy dog. " * 6
        + "Supercalifragilisticexpialidocious words-with-hyphens and\ttabs\nnewlines.")


def _textwrap(m):
    return [
        lambda: m.wrap(TEXT, 30),
        lambda: m.wrap(TEXT, width=12, break_on_hyphens=False, max_lines=4),
        lambda: m.fill(TEXT, width=25, initial_indent="> ", subsequent_indent="  "),
        lambda: m.shorten(TEXT, 40, placeholder=" [..]"),
        lambda: m.dedent("    a\n      b\n\n    c\n"),
        lambda: m.indent("a\n\nb\n", "  ", lambda line: True),
        lambda: m.TextWrapper(width=20, expand_tabs=False, drop_whitespace=False).wrap(TEXT),
        lambda: m.wrap("", 10),
        lambda: m.wrap(TEXT, 0),  # ValueError
    ]


def _colorsys(m):
    colors = [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.2, 0.4, 0.6), (0.9, 0.1, 0.1),
              (0.5, 0.5, 0.5), (0.0, 1.0, 0.5), (1, 0, 0), (0.3, 0.3, 0.9)]
    calls = []
    for c in colors:
        calls += [lambda c=c: m.rgb_to_hsv(*c), lambda c=c: m.hsv_to_rgb(*c),
                  lambda c=c: m.rgb_to_hls(*c), lambda c=c: m.hls_to_rgb(*c),
                  lambda c=c: m.rgb_to_yiq(*c), lambda c=c: m.yiq_to_rgb(*c)]
    return calls


def _fractions(m):
    F = m.Fraction
    return [
        lambda: F(3, 4) + F(5, 6),
        lambda: F(3, 4) * 2 - F(1, 3) / F(7, 5),
        lambda: F("3.1415926535").limit_denominator(1000),
        lambda: F.from_float(0.1),
        lambda: F(1, 3) < F(1, 2) <= 0.5,
        lambda: (F(7, 3) // 2, F(7, 3) % 2, divmod(F(7, 3), F(1, 2)), F(2, 3) ** 3),
        lambda: (hash(F(5, 1)), str(F(-6, 4)), repr(F(1, 7)), round(F(7, 2)), float(F(1, 8))),
        lambda: sum(F(1, n) for n in range(1, 30)),
        lambda: F(1, 0),  # ZeroDivisionError
        lambda: F("1/x"),  # ValueError
        lambda: (F(3, 4).as_integer_ratio(), abs(F(-1, 2)), -F(1, 2), F(5, 3).__ceil__()),
    ]


CASES = {"textwrap": _textwrap, "colorsys": _colorsys, "fractions": _fractions}


def fresh_module(name):
    """A new copy of a stdlib module (the imported one stays plain)."""
    spec = importlib.util.find_spec(name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outcome(call):
    try:
        return "ok", repr(call())
    except Exception as error:  # noqa: BLE001 - compared
        return type(error).__name__, str(error)


Report = collections.namedtuple(
    "Report", "module functions compiled called calls mismatches side_exits unsupported")


def run_module(name, repeat=3):
    """Run every case plainly and jitted `repeat` times; return a Report."""
    plain = fresh_module(name)
    jitted = fresh_module(name)
    wrappers = cpjit.jit_module(jitted, warmup=0)
    mismatches = []
    calls = 0
    for _ in range(repeat):
        for index, (want_call, got_call) in enumerate(zip(CASES[name](plain), CASES[name](jitted))):
            want, got = _outcome(want_call), _outcome(got_call)
            calls += 1
            if want != got:
                mismatches.append((index, want, got))
    unsupported = collections.Counter()
    for w in wrappers:
        for _, opname, _ in w.stats["unsupported"]:
            unsupported[opname] += 1
    return Report(name, len(wrappers), sum(w.compiled for w in wrappers),
                  sum(w.stats["calls"] > 0 for w in wrappers), calls, mismatches,
                  sum(sum(w.stats["side_exits"].values()) for w in wrappers), dict(unsupported))
