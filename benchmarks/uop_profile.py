"""Where a jitted kernel's instructions go, uop by uop (callgrind over the JIT code).

    python3 benchmarks/uop_profile.py NAME [--top 30]

Runs the kernel (benchmarks/kernels/NAME.py) jitted under valgrind's callgrind
twice, with 2 and with 4 calls, each time with CPJIT_PERF_MAP=1 so that cpjit
names its machine code uop by uop (`module.function:N UOP`, N being the uop's
line in the dump's final listing).  The difference of the two runs, halved, is
the cost of one call once everything is compiled: instructions per uop of the
machine code, and per C function (the runtime, CPython) for the rest.  Needs
valgrind; instruction counts, unlike times, do not depend on the machine's load.
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
JIT_CODE = "(jitted code)"


def _child(name: str, calls: int) -> None:
    """Inside valgrind: load the kernel jitted and call it `calls` times."""
    sys.path.insert(0, str(HERE))
    import suite
    module = suite.load(name, "jit")
    for _ in range(calls):
        suite.run(module)


def _read_map(path: Path) -> list[tuple[int, int, str]]:
    """The perf map's regions, newest last (a later compilation may reuse the
    memory of an earlier one: the newest region that holds an address names it)."""
    regions = []
    for line in path.read_text().splitlines():
        start, size, name = line.split(" ", 2)
        regions.append((int(start, 16), int(size, 16), name.removeprefix("cpjit:")))
    return regions


def _costs(out: Path) -> tuple[collections.Counter, collections.Counter]:
    """Exclusive instruction counts of a callgrind output made with
    --dump-instr=yes: by address for code no object file names (the JIT's),
    by function for the rest."""
    by_address, by_function = collections.Counter(), collections.Counter()
    address, function, anonymous, after_call = 0, "", False, False
    # callgrind's name compression: "(id) name" the first time, "(id)" after;
    # fn= and cfn= (a callee) share their ids.
    names: dict[str, str] = {}
    for line in out.read_text().splitlines():
        if line.startswith(("fn=", "cfn=", "calls=")):
            key, value = line.split("=", 1)
            if key == "calls":
                after_call = True  # the next cost line is the call's inclusive cost
                continue
            match = re.match(r"(\(\d+\))(?: (.*))?", value)
            if match:
                if match.group(2) is not None:
                    names[match.group(1)] = match.group(2)
                value = names.get(match.group(1), value)
            if key == "fn":
                function = value
                anonymous = value.startswith("0x")
            continue
        match = re.match(r"(0x[0-9a-f]+|[+-]\d+|\*)\s+(\d+)", line)
        if not match:
            continue
        token, cost = match.group(1), int(match.group(2))
        if token.startswith("0x"):
            address = int(token, 16)
        elif token != "*":
            address += int(token)
        if after_call:
            after_call = False
            continue
        if anonymous:
            by_address[address] += cost
        else:
            by_function[function] += cost
    return by_address, by_function


def _profile(name: str, calls: int, workdir: Path) -> tuple[collections.Counter, set]:
    """Instructions by uop (and by C function) of a process making `calls`
    calls, and the names that are uops."""
    out = workdir / f"callgrind.{calls}"
    env = dict(os.environ, CPJIT_PERF_MAP="1", PYTHONDONTWRITEBYTECODE="1")
    process = subprocess.run(
        ["valgrind", "--tool=callgrind", "--dump-instr=yes", "--dump-line=no",
         f"--callgrind-out-file={out}", sys.executable, __file__, "--child", name, str(calls)],
        env=env, capture_output=True, text=True)
    pid = re.search(r"==(\d+)== Callgrind", process.stderr)
    if process.returncode != 0 or pid is None:
        raise SystemExit(f"valgrind failed:\n{process.stderr[-2000:]}")
    perf_map = Path(f"/tmp/perf-{pid.group(1)}.map")
    regions = _read_map(perf_map) if perf_map.exists() else []
    perf_map.unlink(missing_ok=True)
    by_address, by_function = _costs(out)
    totals = collections.Counter(by_function)
    for address, cost in by_address.items():
        owner = next((region for start, size, region in reversed(regions)
                      if start <= address < start + size), None)
        totals[owner or JIT_CODE] += cost
    return totals, {region for _, _, region in regions} | {JIT_CODE}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        return _child(sys.argv[2], int(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a kernel of benchmarks/kernels")
    parser.add_argument("--top", type=int, default=30, help="rows to show (default 30)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import suite
    suite.select([args.name])
    if shutil.which("valgrind") is None:
        raise SystemExit("uop_profile needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as workdir:
        (two, _), (four, uops) = (_profile(args.name, calls, Path(workdir)) for calls in (2, 4))
    per_call = {key: (four[key] - two[key]) / 2 for key in set(two) | set(four)}
    total = sum(per_call.values())
    jitted = sum(cost for key, cost in per_call.items() if key in uops)
    print(f"{args.name}: {total / 1e6:.1f} M instructions per call, "
          f"{jitted / 1e6:.1f} M of them in jitted code")
    for key, cost in sorted(per_call.items(), key=lambda item: -item[1])[:args.top]:
        print(f"{cost / 1e6:9.2f} M  {cost / total:6.1%}  {key}")


if __name__ == "__main__":
    main()
