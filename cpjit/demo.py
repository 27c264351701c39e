"""The demo: jit a few real functions, check them against the interpreter, time both, dump one."""

from __future__ import annotations

import time

from . import jit

# Plain Python kernels; each is run undecorated and through cpjit.jit().


def sum_of_squares(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def weighted_mean(xs, ws):
    num = 0.0
    den = 0.0
    for i in range(len(xs)):
        num += xs[i] * ws[i]
        den += ws[i]
    return num / den


def word_frequencies(words):
    counts = {}
    for word in words:
        key = word.lower()
        if key in counts:
            counts[key] += 1
        else:
            counts[key] = 1
    return sorted(counts.items(), key=lambda item: -item[1])[:3]


class Particle:
    def __init__(self, x, v):
        self.x = x
        self.v = v

    def step(self, dt):
        self.x += self.v * dt
        if self.x < 0.0 or self.x > 1.0:
            self.v = -self.v


def simulate(particles, steps):
    for _ in range(steps):
        for p in particles:
            p.step(0.01)
    return round(sum(p.x for p in particles), 6)


def _best(func, args, repeat):
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = func(*args)
        best = min(best, time.perf_counter() - started)
    return best, result


def main(quick: bool = False) -> int:
    scale = 1 if quick else 5
    words = ("the quick brown fox jumps over the lazy dog The Fox " * 2000 * scale).split()
    xs = [i * 0.001 for i in range(100_000 * scale)]
    ws = [1.0 + (i % 7) for i in range(100_000 * scale)]
    cases = [
        (sum_of_squares, (300_000 * scale,)),
        (weighted_mean, (xs, ws)),
        (word_frequencies, (words,)),
        (simulate, None),
    ]
    print("cpjit demo: each function runs in the interpreter and as machine code, same inputs\n")
    print(f"{'function':<18} {'interpreter':>12} {'cpjit':>10} {'speedup':>8}  result")
    failures = 0
    for func, args in cases:
        jitted = jit(func)
        if func is simulate:
            Particle.step = jit(Particle.__dict__["step"])
        make_args = (lambda: ([Particle(i / 50, 0.3 + i / 100) for i in range(50)],
                              200 * scale)) if args is None else (lambda a=args: a)
        plain_time, want = _best(func, make_args(), 3)
        jitted(*make_args())  # compile (a function with a loop compiles at its first call)
        jit_time, got = _best(jitted, make_args(), 3)
        if func is simulate:
            Particle.step = Particle.__dict__["step"].__wrapped__
        ok = got == want
        failures += not ok
        status = "ok" if ok else f"MISMATCH: interpreter {want!r}"
        state = "" if jitted.compiled else f" (interpreter: {jitted.fallback_reason})"
        print(f"{func.__name__:<18} {plain_time * 1e3:>10.1f}ms {jit_time * 1e3:>8.1f}ms "
              f"{plain_time / jit_time:>7.2f}x  {str(got)[:40]} {status}{state}")
    print("\nHow sum_of_squares became machine code: its bytecode, its uops after each pass,")
    print("and the side exits (the whole dump, with stencils and the patched machine code:")
    print("python -m cpjit dump cpjit/demo.py:sum_of_squares --call 10; a page to click through:")
    print("python -m cpjit explain cpjit/demo.py:sum_of_squares --call 10 -o page.html)\n")
    small = jit(sum_of_squares)
    small(10)
    print(small.dump(sections=("header", "bytecode", "uops", "side exits", "stats")))
    if failures:
        print(f"{failures} result(s) differed from the interpreter")
    return 1 if failures else 0
