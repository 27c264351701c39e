"""Randomly made functions of int and float arithmetic in loops, run plainly and
jitted on the same inputs (tests/differential.py compares results, exceptions
and tracebacks).  They go where the hand-written tests may not: raw ints that
overflow 64 bits, floats and ints mixed in one local, divisions by zero,
nested loops with unboxed locals, list items read and written (indexes out
of range too), while loops, swaps, negation, bools in arithmetic, break and
continue, calls of a jitted helper, comprehensions, and calls whose argument
types change (guards that fail, side-exit storms,
recompilations).  Seeded: the same
functions every run; `CPJIT_FUZZ=N` makes N more (with a random seed, printed)
for a longer hunt."""

from __future__ import annotations

import os
import random

import pytest
from differential import check, run, same

import cpjit

BINARY = ["+", "-", "*", "//", "%", "&", "|", "^", "/"]
COMPARE = ["<", "<=", ">", ">=", "==", "!="]


class Maker:
    """The source of one random function of `a` and `b`."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.locals = ["a", "b", "s", "t"]
        self.lines = []

    def value(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.45:
            return rng.choice(self.locals)
        if kind < 0.6:
            return rng.choice(["i", "j"]) if self.depth else rng.choice(self.locals)
        if kind < 0.8:
            return str(rng.choice([0, 1, 2, 3, 7, -1, -5, 1 << 40, (1 << 62) + 1, -(1 << 63)]))
        return repr(rng.choice([0.5, -2.25, 1e300, 0.0, 3.0]))

    def expression(self, depth: int = 0) -> str:
        rng = self.rng
        if depth > 1 or rng.random() < 0.4:
            return self.value()
        if rng.random() < 0.1:
            return f"-{self.expression(depth + 1)}"
        return f"({self.expression(depth + 1)} {rng.choice(BINARY)} {self.expression(depth + 1)})"

    def statement(self, indent: int) -> None:
        rng = self.rng
        pad = "    " * indent
        kind = rng.random()
        if kind < 0.45:
            target = rng.choice(["s", "t", "a", "b"])
            if rng.random() < 0.5:
                self.lines.append(f"{pad}{target} = {self.expression()}")
            else:
                self.lines.append(f"{pad}{target} {rng.choice(BINARY[:7])}= {self.expression()}")
        elif kind < 0.65:
            self.lines.append(f"{pad}if {self.expression()} {rng.choice(COMPARE)} "
                              f"{self.expression()}:")
            self.block(indent + 1, 2)
            if rng.random() < 0.4:
                self.lines.append(f"{pad}else:")
                self.block(indent + 1, 2)
        elif kind < 0.8 and self.depth < 2:
            var = "ij"[self.depth]
            self.depth += 1
            if rng.random() < 0.7:
                self.lines.append(f"{pad}for {var} in range({rng.choice([3, 5, 9, 17])}):")
                self.bound(indent + 1)
            else:
                self.lines.append(f"{pad}{var} = 0")
                self.lines.append(f"{pad}while {var} < {rng.choice([3, 6, 11])}:")
                self.lines.append(f"{pad}    {var} += 1")
                self.bound(indent + 1)
            self.block(indent + 1, 3)
            self.depth -= 1
        elif kind < 0.85:
            self.lines.append(f"{pad}if s > {rng.choice([10, 1000, 1 << 50])}:")
            self.lines.append(f"{pad}    s = s % {rng.choice([7, 97, 1 << 31])}")
        elif kind < 0.9:
            self.lines.append(f"{pad}t = t * {rng.choice([2, 3, 0.5])} + {self.value()}")
        elif kind < 0.95:
            self.list_statement(pad)
        else:
            self.lines.append(pad + rng.choice([
                "s, t = t, s", "a, b = b, a + b", "t = -t", "s = s + (a < b)",
                f"b = not {self.expression()}", "s, t, a = a, s, t"]))

    def index(self) -> str:
        return self.rng.choice(["i", "j", "0", "-1", "2", "a % 3", "len(xs) - 1"]) \
            if self.depth else self.rng.choice(["0", "-1", "1"])

    def list_statement(self, pad: str) -> None:
        """A read or write of the list argument `xs` (ints and floats; an index
        may be out of range), or a call of the helper."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.35:
            self.lines.append(f"{pad}s = s + xs[{self.index()}]")
        elif kind < 0.6:
            self.lines.append(f"{pad}xs[{self.index()}] = {self.expression()}")
        elif kind < 0.75:
            self.lines.append(f"{pad}xs[{self.index()}] {rng.choice(BINARY[:3])}= {self.value()}")
        elif kind < 0.85:
            self.lines.append(f"{pad}t = helper(t, {self.value()})")
        elif kind < 0.95 and self.depth:
            self.lines.append(f"{pad}if {self.expression()} {rng.choice(COMPARE)} {self.value()}:")
            self.lines.append(f"{pad}    {rng.choice(['break', 'continue'])}")
        else:
            self.lines.append(f"{pad}u = [v * 2 for v in xs if v != {self.value()}]")
            self.lines.append(f"{pad}s = s + len(u)")

    def bound(self, indent: int) -> None:
        """At the start of a loop's body: ints that grew past 2**200 are cut
        down (a loop squaring one would soon fill the memory)."""
        pad = "    " * indent
        for name in ("s", "t", "a", "b"):
            self.lines.append(f"{pad}if not -BOUND < {name} < BOUND:")
            self.lines.append(f"{pad}    {name} = {name} % 1000003")

    def block(self, indent: int, most: int) -> None:
        for _ in range(self.rng.randint(1, most)):
            self.statement(indent)

    def source(self, name: str) -> str:
        self.depth = 0
        # (i and j bound from the start: CPython 3.11 reports an unbound local
        # read right after a store or load of another line at that other line
        # once it has quickened the pair into a superinstruction, and at its
        # own line before; the machine code reports its own line.)
        self.lines = [f"def {name}(a, b, xs):", "    s = 0", "    t = 1", "    i = j = 0"]
        self.depth = 1
        self.lines.append(f"    for i in range({self.rng.choice([4, 10, 25])}):")
        self.bound(2)
        self.block(2, 4)
        self.depth = 0
        self.block(1, 2)
        self.lines.append("    return s, t, a, b, xs")
        return "\n".join(self.lines) + "\n"


INPUTS = [(3, 4), (2.5, -1.0), (1 << 40, 7), (0, 0), (-3, 0.5), (5, 1 << 62)]
LISTS = [[1, 2, 3, 4, 5], [0.5, 1.5, -2.0], [1 << 62, -7, 3, 0, 2, 9, 11, 4], []]

HELPER = """
BOUND = 1 << 200

def helper(x, y):
    if x > y:
        return x - y
    return x * 2 + y
"""


def make(seed: int, jitted_helper: bool = False):
    """The function of `seed` (and its source), in a module of its own with
    the helper it may call (jitted, for the jitted function's module)."""
    name = f"fuzzed_{seed}"
    source = Maker(random.Random(seed)).source(name)
    namespace: dict = {}
    exec(compile(HELPER, "<fuzz helper>", "exec"), namespace)
    if jitted_helper:
        namespace["helper"] = cpjit.jit(namespace["helper"])
    exec(compile(source, f"<fuzz {seed}>", "exec"), namespace)
    return namespace[name], source


def inputs():
    """Each call's arguments, made afresh (the functions change their list)."""
    calls = [INPUTS[0] + (0,)] * 3 + [args + (k,) for k, args in enumerate(INPUTS * 2)]
    return [(a, b, list(LISTS[k % len(LISTS)])) for a, b, k in calls]


def differ(seed: int) -> str | None:
    """None if the jitted function did what the plain one did on every input,
    else what differed."""
    (func, source), (other, _) = make(seed), make(seed, jitted_helper=True)
    # Warmed up (and profiled) on ints, then every input in turn, twice:
    # the types change under its guards.
    jitted = cpjit.jit(other, warmup=2)
    for shown, plain_args, jitted_args in zip(inputs(), inputs(), inputs()):
        want, got = run(func, plain_args), run(jitted, jitted_args)
        if not same(want, got):
            return (f"seed {seed}, {shown!r}:\n{source}\nplain: {want.summary()}\n"
                    f"jitted: {got.summary()}")
    return None


@pytest.mark.parametrize("seed", range(120))
def test_fuzzed_functions_do_what_the_interpreter_does(seed):
    assert differ(seed) is None


def test_the_fuzzed_functions_are_compiled_and_unboxed():
    # (So that the comparison above compares machine code with raw values.)
    unboxed = 0
    for seed in range(40):
        func, _ = make(seed)
        wrapper = check(func, inputs=lambda: (3, 4, [1, 2, 3, 4, 5]), calls=3)
        unboxed += any("unboxed locals" in change for report in wrapper._info.reports
                       for change in report.changes)
    assert unboxed >= 20, unboxed


def test_more_fuzzed_functions():
    count = int(os.environ.get("CPJIT_FUZZ", "0") or 0)
    if not count:
        pytest.skip("CPJIT_FUZZ=N runs N more random functions")
    start = random.SystemRandom().randrange(1 << 30)
    print(f"fuzzing seeds {start}..{start + count - 1}")
    failures = [text for text in map(differ, range(start, start + count)) if text]
    assert not failures, f"{len(failures)} of {count} differ; the first:\n{failures[0]}"
