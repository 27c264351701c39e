"""The build step: uop definitions, stencil compilation and the table, against expected output."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cpjit._build import clang as clang_module
from cpjit._build import uopdefs

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
EXPECTED = DATA / "expected_tiny_stencils.py.txt"

try:
    CLANG = clang_module.find_clang()
except clang_module.ClangNotFound as error:
    CLANG = None
    NO_CLANG = str(error)

needs_clang = pytest.mark.skipif(CLANG is None, reason="no clang >= 19 (see cpjit/_build/clang.py)")


def _build(tmp_path, uop_dir, **kwargs):
    from cpjit._build import build
    logs = []
    output = build(ROOT, tmp_path / "table.py", uop_dir=uop_dir, log=logs.append, **kwargs)
    return output, logs


def _normalized(text: str) -> str:
    """The table without what depends on the machine (the digest, the Python include path)."""
    return re.sub(r"^# digest: .*$|^DIGEST = .*$", "<digest>", text, flags=re.M)


@needs_clang
def test_tiny_uop_set_matches_expected_output(tmp_path):
    expected = EXPECTED.read_text()
    version = re.search(r"^CLANG = '(.*)'$", expected, re.M)[1]
    if version != CLANG.version or sys.version_info[:2] != (3, 11):
        pytest.skip(f"expected output made with clang {version} for 3.11; "
                    f"have clang {CLANG.version}, Python {sys.version_info[:2]}")
    output, _ = _build(tmp_path, "tests/data/uops")
    got = _normalized(output.read_text())
    if got != _normalized(expected):
        print(f"If this is expected, replace {EXPECTED} with:\n{output.read_text()}")
    assert got == _normalized(expected)


@needs_clang
def test_table_is_reproducible_and_only_rebuilt_when_inputs_change(tmp_path):
    output, logs = _build(tmp_path, "tests/data/uops")
    first = output.read_bytes()
    mtime = output.stat().st_mtime_ns
    _, logs = _build(tmp_path, "tests/data/uops")
    assert "up to date" in logs[-1]
    assert output.stat().st_mtime_ns == mtime
    _, logs = _build(tmp_path, "tests/data/uops", force=True)
    assert "compiled 3 stencils" in logs[-2] and "byte-compiled" in logs[-1]
    assert output.read_bytes() == first


@needs_clang
def test_the_table_is_byte_compiled_once(tmp_path):
    """The build leaves the table's bytecode cache (the first compilation in a
    process imports the table: from source it takes ~20x longer), and writes it
    again only when it is not what the import system would accept."""
    import importlib.util
    output, logs = _build(tmp_path, "tests/data/uops")
    cached = Path(importlib.util.cache_from_source(str(output)))
    assert any("byte-compiled" in line for line in logs) and cached.exists()
    written = cached.stat().st_mtime_ns
    _, logs = _build(tmp_path, "tests/data/uops")
    assert not any("byte-compiled" in line for line in logs)
    assert cached.stat().st_mtime_ns == written
    cached.write_bytes(b"stale")
    _, logs = _build(tmp_path, "tests/data/uops")
    assert "byte-compiled" in logs[-1]
    assert cached.read_bytes()[:4] == importlib.util.MAGIC_NUMBER


@needs_clang
def test_generated_table_loads_and_describes_its_uops(tmp_path):
    output, _ = _build(tmp_path, "tests/data/uops")
    namespace = {}
    exec(compile(output.read_text(), str(output), "exec"), namespace)
    uops, stencils = namespace["UOPS"], namespace["STENCILS"]
    assert set(stencils) == {"shim", "_TEST_LOAD", "_TEST_CALL_AND_BRANCH"}
    spec = uops["_TEST_CALL_AND_BRANCH"]
    assert spec.pops(0) == 2 and spec.pushes(0) == 1
    assert {"ESCAPES", "ERRORS", "JUMPS", "USES_OPERAND0"} <= spec.flags
    assert uops["_TEST_LOAD"].flags >= {"DEOPTS", "USES_OPARG"}
    stencil = stencils["_TEST_CALL_AND_BRANCH"]
    values = {h.value.name for h in stencil.holes + stencil.cold_holes}
    assert stencil.trailing_jump and stencil.cold  # hot path first, error path apart
    assert {"OPERAND0", "CONTINUE", "JUMP_TARGET", "ERROR_TARGET", "SYMBOL"} <= values


def _compile_and_read(tmp_path, body: str):
    from cpjit._build import elf
    source = tmp_path / "stencil.c"
    source.write_text('#include "template.h"\n' + textwrap.dedent(body))
    obj = tmp_path / "stencil.o"
    clang_module.compile_stencil(CLANG, source, obj, [ROOT / "stencils", ROOT / "csrc"])
    return elf.read_stencil(obj, "stencil")


@needs_clang
def test_mutable_state_in_a_stencil_fails_the_build(tmp_path):
    from cpjit._build.elf import StencilError
    with pytest.raises(StencilError, match="writable section"):
        _compile_and_read(tmp_path, """
            static long counter;
            PRESERVE_NONE PyObject *_JIT_ENTRY(JIT_PARAMS) {
                counter++;
                CPJIT_TAIL(_JIT_CONTINUE, stack_pointer);
            }
        """)


@needs_clang
def test_unknown_relocation_fails_the_build(tmp_path):
    from cpjit._build.elf import StencilError
    with pytest.raises(StencilError, match="R_X86_64_16.*not supported"):
        _compile_and_read(tmp_path, """
            PRESERVE_NONE PyObject *_JIT_ENTRY(JIT_PARAMS) {
                __asm__ volatile("jmp 1f; .short _JIT_OPARG; 1:");
                CPJIT_TAIL(_JIT_CONTINUE, stack_pointer);
            }
        """)


@needs_clang
@pytest.mark.parametrize("instruction,message", [
    ("movl $_JIT_OPARG, %%eax", "value holes must be 64-bit absolute"),
    ("movabsq $_JIT_OPARG_SLOT, %%rax", "slot holes are 32-bit absolute"),
])
def test_holes_must_be_written_at_their_width(tmp_path, instruction, message):
    from cpjit._build.elf import StencilError
    with pytest.raises(StencilError, match=message):
        _compile_and_read(tmp_path, f"""
            PRESERVE_NONE PyObject *_JIT_ENTRY(JIT_PARAMS) {{
                __asm__ volatile("{instruction}" ::: "rax");
                CPJIT_TAIL(_JIT_CONTINUE, stack_pointer);
            }}
        """)


@needs_clang
def test_external_call_without_got_fails_the_build(tmp_path):
    from cpjit._build.elf import StencilError
    with pytest.raises(StencilError, match="out of range"):
        _compile_and_read(tmp_path, """
            PRESERVE_NONE PyObject *_JIT_ENTRY(JIT_PARAMS) {
                __asm__ volatile("call PyErr_Clear" ::: "memory");
                CPJIT_TAIL(_JIT_CONTINUE, stack_pointer);
            }
        """)


@pytest.mark.parametrize("source,message", [
    ("UOP(_X, (a -- ), 0) {\n}\nUOP(_X, (a -- ), 0) {\n}\n", "already defined"),
    ("UOP(_Y, (a b -- ), 0) {\n}\n", "bad stack item"),
    ("UOP(_Z, (a -- ), FAST) {\n}\n", "unknown flags"),
    ("UOP(_W, (a, b -- b, a), 0) {\n}\n", "another stack position"),
    ("UOP(lower, ( -- ), 0) {\n}\n", "_UPPER_CASE"),
    ("UOP(_V, ( -- ), SYNCS_FRAME) {\n}\n", "only makes sense with ESCAPES"),
    ("UOP(_U, (a -- ) 0) {\n}\n", "bad.c:1: cannot read"),
    ("UOP(_T, (a -- ), 0);\n", "bad.c:1: cannot read"),
    ("UOP(_S, (a[oparg / 2] -- ), 0) {\n}\n", "must be an expression of oparg"),
])
def test_malformed_uop_definitions(tmp_path, source, message):
    directory = tmp_path / "uops"
    directory.mkdir()
    (directory / "bad.c").write_text(source)
    with pytest.raises(uopdefs.UopDefError, match=message):
        uopdefs.load(tmp_path, "uops")


def test_sizes_with_nested_parentheses(tmp_path):
    source = "UOP(_P, (parts[(oparg & 1) + ((oparg >> 1) & 1)], top -- out), 0) {\n}\n"
    (tmp_path / "uops").mkdir()
    (tmp_path / "uops" / "p.c").write_text(source)
    (uop,) = uopdefs.load(tmp_path, "uops")
    assert uop.inputs[0].size == "(oparg & 1) + ((oparg >> 1) & 1)"
    assert uopdefs.total(uop.inputs) == "1 + ((oparg & 1) + ((oparg >> 1) & 1))"


def test_every_project_uop_is_defined_once_with_docs():
    uops = uopdefs.load(ROOT)
    assert len(uops) > 50
    for uop in uops:
        assert uop.doc, f"{uop.source}: {uop.name} has no doc comment"


def test_clang_not_found_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CPJIT_CLANG", raising=False)
    with pytest.raises(clang_module.ClangNotFound, match="apt-get install clang-19"):
        clang_module.find_clang()


def test_stencils_command_lists_every_stencil():
    from cpjit import stencil_table
    out = subprocess.run([sys.executable, "-m", "cpjit", "stencils"], capture_output=True,
                         text=True, check=True).stdout
    for name in stencil_table.stencils():
        assert f"\n{name}: " in out
    assert "continue" in out and "rel32" in out and "gotrel32" in out and "abs64" in out


def test_oparg_variants_are_generated_for_runs_of_exactly_oparg_items():
    """The uops with an `x[oparg]` input or output, and only those, get a
    variant per VARIANT_OPARGS in the table: its source defines the oparg
    before including the template, and its code has no oparg hole."""
    from cpjit import stencil_table
    from cpjit._build import cgen
    from cpjit._stencils import VARIANT_OPARGS, HoleValue, split_variant, variant_name
    uops = uopdefs.load(ROOT)
    with_runs = {uop.name for uop in uops if uop.variant_opargs}
    assert {"_CALL_FUNCTION", "_BUILD_TUPLE", "_UNPACK_SEQUENCE_EXACT"} <= with_runs
    assert "_BUILD_MAP" not in with_runs  # values[oparg*2]: no variants
    for uop in uops:
        assert uop.variant_opargs == (VARIANT_OPARGS if any(
            item.size == "oparg" for item in uop.inputs + uop.outputs) else ())
    call = next(uop for uop in uops if uop.name == "_CALL_FUNCTION")
    source = cgen.stencil_source(call, 2)
    assert source.index("#define CPJIT_FIXED_OPARG 2") < source.index('#include "template.h"')
    assert "CPJIT_FIXED_OPARG" not in cgen.stencil_source(call)
    stencils = stencil_table.stencils()
    variants = {name for name in stencils if split_variant(name)[1] is not None}
    assert variants == {variant_name(name, oparg) for name in with_runs
                        for oparg in VARIANT_OPARGS}
    for name in variants:
        holes = stencils[name].holes + stencils[name].cold_holes
        assert all(hole.value is not HoleValue.OPARG for hole in holes), name
