"""Compile-time report: how fast cpjit compiles, per bytecode instruction and per pass.

    python3 benchmarks/compile_time.py [--repeat N]

Compiles every function and method of the kernels, and some pure-Python stdlib
functions, with cpjit's pass pipeline N times each (after warming each one in the
interpreter, so its code carries the type feedback a real compilation sees) and
reports the medians: microseconds per bytecode instruction for translate, optimize
(every pass between translate and emit) and emit, machine-code bytes per
instruction, and the end-to-end time of a compilation (the whole compile_code()
call), for ~100-instruction functions and the largest ones.
"""

import argparse
import colorsys
import dataclasses
import fractions
import json.decoder
import json.encoder
import json.scanner
import math
import statistics
import textwrap
import time

import cpjit
from cpjit import _versions, pipeline, translate

import suite

TEXT = ("Copy-and-patch compilation turns each bytecode instruction into a precompiled "
        "piece of machine code, copied into place and patched with its operands. ") * 4


def _python_json_decoder():
    decoder = json.JSONDecoder()
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder


def stdlib_functions():
    """(function, a call that exercises it) for some stdlib functions."""
    wrapper = textwrap.TextWrapper(width=36)
    decoder = _python_json_decoder()
    document = '{"name": "cpjit", "sizes": [1, 2.5, -3e2], "nested": {"ok": true, "none": null}}'
    return [
        (textwrap.TextWrapper._wrap_chunks, lambda: wrapper.wrap(TEXT)),
        (textwrap.dedent, lambda: textwrap.dedent("    a\n      b\n    c\n")),
        (fractions.Fraction.__new__,
         lambda: (fractions.Fraction("-3/7"), fractions.Fraction(6, 4), fractions.Fraction(0.75))),
        (fractions.Fraction.limit_denominator,
         lambda: fractions.Fraction(math.pi).limit_denominator(1000)),
        (colorsys.rgb_to_hls, lambda: colorsys.rgb_to_hls(0.2, 0.4, 0.7)),
        (colorsys.hls_to_rgb, lambda: colorsys.hls_to_rgb(0.6, 0.45, 0.5)),
        (colorsys.rgb_to_hsv, lambda: colorsys.rgb_to_hsv(0.9, 0.4, 0.1)),
        (json.decoder.py_scanstring,
         lambda: json.decoder.py_scanstring('"caf\\u00e9 \\"au\\" lait\\n"', 1)),
        (json.decoder.JSONObject, lambda: decoder.decode(document)),
        (json.encoder.JSONEncoder.encode,
         lambda: json.encoder.JSONEncoder().encode({"a": [1, 2], "b": "text"})),
    ]


def kernel_functions():
    """(label, function) for every function and method of every kernel, warmed by one
    plain run of the kernel (the functions are the ones jit_module() wraps)."""
    functions = []
    for name in suite.NAMES:
        module = suite.load_plain(name)
        suite.run(module)
        for wrapper in cpjit.jit_module(module):
            functions.append((f"{name}.{wrapper.__qualname__}", wrapper.__wrapped__))
    return functions


@dataclasses.dataclass
class Timing:
    label: str
    instructions: int = 0
    uops: int = 0
    code_bytes: int = 0
    translate: float = 0.0  # seconds, medians over the repetitions
    optimize: float = 0.0
    emit: float = 0.0
    total: float = 0.0
    failure: str = ""


def measure(label, function, repeat):
    """The medians of `repeat` first compilations of `function`'s code (after one
    untimed): its bytecode is decoded each time, as when a function is first jitted."""
    samples = []
    for _ in range(repeat + 1):
        # Each is a first compilation: the bytecode is read (decoded) again.
        _versions.current.forget_decoded()
        started = time.perf_counter()
        try:
            record = pipeline.compile_code(function.__code__, label,
                                            globals_=function.__globals__)
        except translate.Unsupported as error:
            return Timing(label, failure=f"not compiled: {error}")
        except pipeline.PassError as error:
            return Timing(label, failure=f"ERROR (a cpjit bug): {error}")
        total = time.perf_counter() - started
        passes = {"translate": 0.0, "optimize": 0.0, "emit": 0.0}
        for report in record.reports:
            passes[report.name if report.name in passes else "optimize"] += report.seconds
        samples.append((passes["translate"], passes["optimize"], passes["emit"], total))
    columns = [statistics.median(column) for column in zip(*samples[1:])]
    return Timing(label, len(record.trace.instructions), record.uop_count,
                  record.emitted.size, *columns)


def report(timings):
    done = sorted((t for t in timings if not t.failure), key=lambda t: -t.instructions)
    print("translate, optimize, emit: microseconds per bytecode instruction; "
          "end to end: microseconds per compilation\n")
    print(f"{'function':<44} {'instrs':>6} {'uops':>5} {'bytes':>6} {'bytes/instr':>11} "
          f"{'translate':>9} {'optimize':>8} {'emit':>6} {'end to end':>10}")
    for t in done:
        n = t.instructions
        print(f"{t.label:<44} {n:>6} {t.uops:>5} {t.code_bytes:>6} {t.code_bytes / n:>11.0f} "
              f"{1e6 * t.translate / n:>9.1f} {1e6 * t.optimize / n:>8.1f} "
              f"{1e6 * t.emit / n:>6.1f} {1e6 * t.total:>10.0f}")
    for t in timings:
        if t.failure:
            print(f"{t.label:<44} {t.failure}")

    instructions = sum(t.instructions for t in done)
    per_instruction = {part: 1e6 * sum(getattr(t, part) for t in done) / instructions
                       for part in ("translate", "optimize", "emit", "total")}
    print(f"\nAll {len(done)} functions together ({instructions} bytecode instructions), "
          f"per instruction:")
    print(f"  translate {per_instruction['translate']:.1f} us, optimize "
          f"{per_instruction['optimize']:.1f} us, emit {per_instruction['emit']:.1f} us; "
          f"end to end {per_instruction['total']:.1f} us; "
          f"{sum(t.code_bytes for t in done) / instructions:.0f} bytes of machine code")
    near = [t for t in done if 80 <= t.instructions <= 125]
    closest = min(done, key=lambda t: abs(t.instructions - 100))
    print(f"\nA ~100-instruction function compiles in {1e6 * closest.total:.0f} us end to end "
          f"({closest.label}, {closest.instructions} instructions); the {len(near)} functions "
          f"of 80-125 instructions take {1e6 * min(t.total for t in near):.0f}-"
          f"{1e6 * max(t.total for t in near):.0f} us, median "
          f"{1e6 * statistics.median(t.total for t in near):.0f} us.")
    print("Largest functions, end to end: " + "; ".join(
        f"{t.label} ({t.instructions} instructions) {1e3 * t.total:.1f} ms" for t in done[:3]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21,
                        help="compilations per function; the median is reported (default 21)")
    args = parser.parse_args()
    functions = kernel_functions()
    for function, exercise in stdlib_functions():
        for _ in range(20):
            exercise()
        functions.append((f"{function.__module__}.{function.__qualname__}", function))
    print(f"Compiling {len(functions)} functions {args.repeat} times each (medians)\n")
    report([measure(label, function, args.repeat) for label, function in functions])


if __name__ == "__main__":
    main()
