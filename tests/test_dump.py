"""Dump mode: the text of a compilation, from source to patched machine code, and the perf map.

The expected dump of a small function is checked in (tests/data/expected_dump.txt).
It changes whenever a uop, a stencil or a pass changes: the test then prints the new
text; `python3 tests/test_dump.py` rewrites the file.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cpjit
from cpjit import disasm, dump, emit, optimize, stencil_table
from cpjit._stencils import Reloc

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = f"{DATA / 'dump_sample.py'}:clamp"
SAMPLE_CALL = "7, 5"
EXPECTED = DATA / "expected_dump.txt"


def expected_dump() -> str:
    return dump.dump_file_function(SAMPLE, call=SAMPLE_CALL, timings=False)


def test_dump_of_a_small_function_matches_expected_output():
    expected = EXPECTED.read_text()
    made_with = re.search(r"^CPython (\S+); stencils built by clang (\S+)", expected, re.M)
    have = (f"{sys.version_info[0]}.{sys.version_info[1]}", stencil_table.clang_version())
    if made_with.groups() != have:
        pytest.skip(f"{EXPECTED.name} was made with CPython {made_with[1]} and clang "
                    f"{made_with[2]}; this is CPython {have[0]} with clang {have[1]}")
    got = expected_dump()
    if got != expected:
        print(f"If this is expected, replace {EXPECTED} with:\n{got}")
    assert got == expected


def test_sections_come_in_pipeline_order():
    text = expected_dump()
    titles = re.findall(r"^== \d+\. (\w+)", text, re.M)
    assert titles == ["Source", "Bytecode", "Uops", "Stencils", "Machine", "Side", "Stats"]


def _compiled(func, *args):
    wrapper = cpjit.jit(func, warmup=0)
    wrapper(*args)
    assert wrapper.compiled, wrapper.fallback_reason
    return wrapper


def sum_of_squares(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_the_text_is_the_same_from_one_compilation_to_the_next():
    first = _compiled(sum_of_squares, 10)
    second = _compiled(sum_of_squares, 10)
    assert first._code.address != second._code.address
    assert first.dump(timings=False) == second.dump(timings=False)
    absolute = first.dump(absolute=True)
    assert f"{first._code.address:012x}" in absolute
    assert "<hidden>" not in absolute and "<hidden>" in first.dump()


def test_every_stencil_placement_and_every_patch_is_shown():
    wrapper = _compiled(sum_of_squares, 10)
    record = wrapper._info
    text = wrapper.dump()
    machine_code = text[text.index("== 5."):text.index("== 6.")]
    blocks = re.findall(r"^  -- (.*)$", machine_code, re.M)
    layout = disasm.Layout(record.emitted)
    for index, placement in enumerate(record.emitted.placements):
        assert any(title.startswith(layout.label(index)) for title in blocks), placement
    assert machine_code.count("hole at ") == len(record.emitted.patches)
    for symbol in record.emitted.got_symbols:
        assert f".quad &{symbol}" in machine_code
    stencils = text[text.index("== 4."):text.index("== 5.")]
    for name in {p.stencil for p in record.emitted.placements}:
        assert f"\n  {name}: used " in stencils


def test_jumps_and_calls_are_named():
    wrapper = _compiled(sum_of_squares, 10)
    emitted = wrapper._info.emitted
    rows = [row for block in disasm.Disassembler(emitted, wrapper._code.read()).blocks()
            for row in block.rows]
    for row in rows:
        if row.text.startswith(("j", "call")):
            assert row.note.startswith("-> "), row
        if row.text.startswith("call qword ptr [rip"):
            assert row.note[3:] in emitted.got_symbols, row
    notes = {row.note for row in rows}
    assert any(re.fullmatch(r"-> uop \d+ \(_\w+\)", note) for note in notes)
    assert any(re.fullmatch(r"-> side exit @ offset \d+", note) for note in notes)
    stub = next(p for p in emitted.placements if p.kind == "exit")
    assert f"side exit @ offset {2 * stub.target}" in disasm.Layout(emitted).name(stub.offset)


def test_holes_show_the_value_written_in_the_code():
    wrapper = _compiled(sum_of_squares, 10)
    emitted = wrapper._info.emitted
    code = wrapper._code
    bases = {emit.BASE_ABSOLUTE: 0, emit.BASE_CODE: code.address,
             emit.BASE_RWDATA: code.rwdata_address}
    disassembler = disasm.Disassembler(emitted, code.read(), base=code.address, hide=False)
    notes = {hole.offset: hole for block in disassembler.blocks() for row in block.rows
             for hole in row.holes}
    assert set(notes) == {patch.offset for patch in emitted.patches}
    for patch in emitted.patches:
        written = notes[patch.offset].written
        if patch.reloc is Reloc.ABS64:
            assert int(written, 16) == (bases[patch.base] + patch.value) % 2**64
        elif patch.reloc in (Reloc.ABS32S, Reloc.ABS32):
            assert int(written, 16) == bases[patch.base] + patch.value
        else:
            location = code.address + patch.offset
            assert int(written, 16) == bases[patch.base] + patch.value - location


def pick(flag, n):
    if flag:
        value = n
    return value + 1


def test_side_exits_show_how_often_they_were_taken():
    wrapper = _compiled(pick, True, 1)
    for _ in range(3):
        with pytest.raises(UnboundLocalError):
            wrapper(False, 1)
    taken = {2 * resume: count for resume, count in
             wrapper._info.emitted.exit_counts(wrapper._code).items()}
    (offset,) = [offset for offset, count in taken.items() if count]
    text = wrapper.dump()
    side_exits = text[text.index("== 6."):text.index("== 7.")]
    row = re.search(rf"^  \w+\s+exit\s+@{offset} LOAD_FAST\s+(\d+)\s+(\d+)", side_exits, re.M)
    assert row.groups() == (str(pick.__code__.co_firstlineno + 3), "3")


def test_a_pass_that_changes_uops_shows_what_it_changed(monkeypatch):
    def annotate(trace, *context):
        returns = [u for u in trace.uops if u.name == "_RETURN_VALUE"]
        returns[-1].comment = "seen by the test pass"
        return ["annotated the last uop"]

    monkeypatch.setattr(optimize, "PASSES", optimize.PASSES + [("annotate", annotate)])
    text = dump.render(dump.subject_of_code(sum_of_squares), timings=False)
    uops = text[text.index("== 3."):text.index("== 4.")]
    assert "  annotate: 1 change\n    annotated the last uop\n" in uops
    assert re.search(r"^  - .*_RETURN_VALUE$", uops, re.M)
    assert re.search(r"^  \+ .*_RETURN_VALUE # seen by the test pass$", uops, re.M)
    assert re.search(r"^  passes: translate, .*annotate", text, re.M)


def test_wrapper_dump_without_dump_mode_recompiles_for_the_listings():
    wrapper = _compiled(sum_of_squares, 10)
    assert wrapper._info.reports[0].trace is None  # nothing kept
    text = wrapper.dump()
    assert "per-pass listings from a recompilation made for this dump" in text
    assert "  after translate: " in text
    assert "compile time: " in text


def test_dump_before_compiling_and_after_a_fallback():
    waiting = cpjit.jit(sum_of_squares, warmup=5)
    text = waiting.dump()
    assert "not compiled yet" in text and "total += i * i" in text and "RESUME" in text

    def generator(n):
        yield n

    fallen = cpjit.jit(generator, warmup=0)
    list(fallen(1))
    text = fallen.dump()
    assert "runs in the interpreter: generators" in text and "(no uops: generators" in text


def test_feedback_the_compiler_used_is_shown():
    class Feedback:
        def describe(self, offset):
            return "seen 3 times" if offset == 0 else None

    subject = dump.subject_of_code(pick)
    subject.record.feedback = Feedback()
    bytecode = dump.render(subject).split("== 2.")[1].split("== 3.")[0]
    assert bytecode.count("feedback: ") == 1
    assert re.search(r"^ +\d+ +0  RESUME .*\n +feedback: seen 3 times$", bytecode, re.M)
    subject.record.feedback = {2: "a mapping works too"}
    assert "feedback: a mapping works too" in dump.render(subject)


def test_dump_true_prints_to_stderr_and_cpjit_dump_dir_writes_files(tmp_path, monkeypatch,
                                                                     capfd):
    monkeypatch.delenv("CPJIT_DUMP", raising=False)
    printed = cpjit.jit(sum_of_squares, warmup=0, dump=True)
    printed(10)
    assert f"cpjit dump of {__name__}.sum_of_squares\n" in capfd.readouterr().err
    monkeypatch.setenv("CPJIT_DUMP", str(tmp_path))
    filed = cpjit.jit(pick, warmup=0)
    filed(True, 1)
    (written,) = tmp_path.iterdir()
    assert written.name == f"{pick.__module__}.pick.txt"
    assert "== 5. Machine code ==" in written.read_text()
    assert capfd.readouterr().err == ""


def test_python_m_cpjit_dump(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cpjit", "dump", SAMPLE, "--call", SAMPLE_CALL,
                             "--absolute"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cpjit dump of dump_sample.clamp\n")
    assert "addresses: absolute" in result.stdout and "calls until compiled: 9" in result.stdout


class Shapes:
    @staticmethod
    def area(w, h):
        return w * h


def test_load_function_finds_functions_and_methods():
    func = dump.load_function(SAMPLE)
    assert func.__name__ == "clamp" and func(7, 5) == 5
    method = dump.load_function(f"{__file__}:Shapes.area")
    assert method(2, 3) == 6
    with pytest.raises(LookupError):
        dump.load_function(f"{__file__}:Shapes.volume")
    with pytest.raises(ValueError):
        dump.load_function("no_colon.py")


def test_perf_map_lines_match_the_code_regions(tmp_path):
    script = tmp_path / "perf_map_check.py"
    script.write_text(
        "import json, os, cpjit\n"
        "from cpjit import dump\n"
        "def f(n):\n"
        "    return sum(i for i in range(n))\n"
        "def g(n):\n"
        "    total = 0\n"
        "    for i in range(n):\n"
        "        total += i\n"
        "    return total\n"
        "regions = []\n"
        "for func in (f, g):\n"
        "    wrapper = cpjit.jit(func, warmup=0)\n"
        "    wrapper(10)\n"
        "    dump.write_perf_map(wrapper, wrapper._info)\n"
        "    regions += wrapper.stats.get('regions') or dump.perf_regions(wrapper)\n"
        "path = f'/tmp/perf-{os.getpid()}.map'\n"
        "lines = open(path).read().splitlines()\n"
        "os.remove(path)\n"
        "print(json.dumps({'lines': lines, 'regions': regions}))\n")
    env = {**os.environ, "CPJIT_PERF_MAP": "1"}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    import json
    output = json.loads(result.stdout)
    regions = [(start, size, name) for start, size, name in output["regions"]]
    assert [name for _, _, name in regions] == ["cpjit:__main__.f", "cpjit:__main__.g"]
    # One symbol per stencil copy, inside its function's code, none overlapping,
    # named after the uop (numbered as in the dump's final listing).
    symbols = []
    for line in output["lines"]:
        start, size, name = line.split(" ", 2)
        symbols.append((int(start, 16), int(size, 16), name))
    for code_start, code_size, code_name in regions:
        mine = sorted({s for s in symbols if s[2].startswith(code_name + ":")})
        assert mine and mine[0][2] == code_name + ":entry"
        assert mine[1][2] == code_name + ":0 _SET_IP"
        assert any(name.startswith(code_name + ":exit @") for _, _, name in mine)
        for (start, size, _), following in zip(mine, mine[1:] + [None]):
            assert size > 0 and code_start <= start and start + size <= code_start + code_size
            assert following is None or start + size <= following[0]
    assert all(any(name.startswith(r[2] + ":") for r in regions) for _, _, name in symbols)


def test_perf_map_is_off_by_default(monkeypatch):
    monkeypatch.delenv("CPJIT_PERF_MAP", raising=False)
    wrapper = _compiled(pick, True, 1)
    path = Path(f"/tmp/perf-{os.getpid()}.map")
    existed = path.exists()
    dump.write_perf_map(wrapper, wrapper._info)
    assert path.exists() == existed


if __name__ == "__main__":
    EXPECTED.write_text(expected_dump())
    print(f"wrote {EXPECTED}")


def test_bad_targets_give_one_line_errors(tmp_path):
    import subprocess
    for target in (f"{tmp_path}/missing.py:f", f"{SAMPLE}:no_such_function", "no-colon"):
        result = subprocess.run([sys.executable, "-m", "cpjit", "dump", target],
                                capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("cpjit: ") and result.stderr.count("\n") == 1


def test_dump_sections_can_be_chosen():
    jitted = _compiled(sum_of_squares, 10)
    text = jitted.dump(sections=("header", "side exits"))
    assert "== " in text and "Side exits" in text and "Machine code" not in text
    with pytest.raises(ValueError, match="unknown dump sections"):
        jitted.dump(sections=("nonsense",))


def test_the_readme_walkthrough_quotes_the_expected_dump():
    """The excerpts in the README's "How it works" are lines of the dump of
    tests/data/dump_sample.py:clamp (its notes, after `#` or `<-`, aside)."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## How it works"):readme.index("## How it is built")]
    dump_lines = [line.rstrip() for line in EXPECTED.read_text().splitlines()]
    quoted, fence = [], None  # lines of the untagged code blocks: dump text
    for line in section.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
        elif fence == "" and line.strip():
            quoted.append(line)
    assert len(quoted) > 30
    for line in quoted:
        text = re.split(r"\s{2,}(?:#|<-) ", line)[0].rstrip()
        assert any(text in dump_line for dump_line in dump_lines), f"not in the dump: {text!r}"
