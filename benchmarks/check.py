"""Check each jitted kernel against the plain interpreter before it is timed.

    python3 benchmarks/check.py [NAME ...]

For each kernel, the main function of a jitted copy is called CALLS times (enough
for everything the timed run compiles to be compiled); every result must equal the
plain copy's, and the main function must be compiled.  Notes list the functions
cpjit could not compile, the instructions it leaves to the interpreter and the side
exits taken.  run.py checks each kernel in a process of its own (isolated()), so a
crash under the JIT is reported instead of ending the suite.
"""

import argparse
import dataclasses
import json
import signal
import subprocess
import sys

import cpjit
import suite

CALLS = cpjit.DEFAULT_WARMUP + 2
TIMEOUT = 300  # seconds for checking one kernel; a few seconds are normal


@dataclasses.dataclass
class Verdict:
    name: str
    status: str  # "ok", "not compiled", "wrong result", "raised", "crashed", "hung"
    message: str = ""
    notes: list = dataclasses.field(default_factory=list)

    @property
    def timed(self):
        """Whether the jitted variant is worth timing: it computes the right result."""
        return self.status in ("ok", "not compiled")

    def lines(self):
        head = f"{self.name}: {self.status}" + (f": {self.message}" if self.message else "")
        return [head] + [f"    {note}" for note in self.notes]


def _notes(wrappers):
    notes = []
    for wrapper in wrappers:
        stats = wrapper.stats
        name = wrapper.__qualname__
        if wrapper.fallback_reason:
            notes.append(f"{name} runs in the interpreter: {wrapper.fallback_reason}")
        if stats["unsupported"]:
            listed = ", ".join(f"{op} (line {line})" for _, op, line in stats["unsupported"])
            notes.append(f"{name} leaves to the interpreter at {listed}")
        exits = sum(stats["side_exits"].values())
        if exits:
            notes.append(f"{name}: {exits} side exits in {CALLS} calls of the kernel")
    return notes


def check(name):
    expected = suite.run(suite.load_plain(name))
    module, wrappers = suite.load_jitted(name)
    main = suite.main_function(module)
    for call in range(1, CALLS + 1):
        try:
            result = suite.run(module)
        except Exception as error:  # the plain copy did not raise: a JIT bug
            return Verdict(name, "raised", f"call {call} of the jitted {main.__qualname__} "
                           f"raised {type(error).__name__}: {error}", _notes(wrappers))
        if result != expected:
            return Verdict(name, "wrong result", f"call {call} of the jitted {main.__qualname__} "
                           f"returned {result!r}, the plain one {expected!r}", _notes(wrappers))
    if not main.compiled:
        return Verdict(name, "not compiled", f"WARNING: the jitted {main.__qualname__} runs in "
                       f"the interpreter: {main.fallback_reason}", _notes(wrappers))
    return Verdict(name, "ok", "", _notes(wrappers))


def isolated(name):
    """check(name) in a new process: a crash or a hang becomes a verdict."""
    command = [sys.executable, __file__, "--json", name]
    reproduce = f"reproduce with: python3 benchmarks/check.py {name}"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return Verdict(name, "hung", f"no result after {TIMEOUT} s; {reproduce}")
    printed = done.stdout.splitlines()
    if done.returncode >= 0 and printed:
        return Verdict(**json.loads(printed[-1]))
    if done.returncode < 0:
        how = f"the process died of {signal.Signals(-done.returncode).name}"
    else:
        how = f"the process exited with status {done.returncode}"
    last = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
    return Verdict(name, "crashed", f"{how}: {last[0]}; {reproduce}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"kernels to check (default: all: {', '.join(suite.NAMES)})")
    parser.add_argument("--json", action="store_true", help="print one JSON verdict a line")
    args = parser.parse_args()
    try:
        names = suite.select(args.names)
    except ValueError as error:
        parser.error(str(error))
    verdicts = [check(name) for name in names]
    for verdict in verdicts:
        if args.json:
            print(json.dumps(dataclasses.asdict(verdict)))
        else:
            print("\n".join(verdict.lines()))
    return 0 if all(v.status == "ok" for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
