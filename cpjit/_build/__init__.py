"""The build step: compile every uop's stencil with clang and write the stencil table.

This subpackage is the only code that imports pyelftools or runs clang; the
runtime only imports the table it writes (cpjit/_generated/).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from .._stencils import variant_name
from . import cgen, clang, uopdefs, writer

SHIM = "shim"  # the entry trampoline: not a uop, compiled from stencils/shim.c

# The files whose content decides the table (besides the uop definitions).
_INPUT_GLOBS = ("stencils/*.h", "stencils/*.c", "csrc/runtime.h", "csrc/pyversion.h",
                "cpjit/_stencils.py", "cpjit/_build/*.py")


def table_name() -> str:
    """Module name of the table for the running interpreter, e.g. stencils_cpython_311."""
    return "stencils_" + sys.implementation.cache_tag.replace("-", "_")


def default_output(root: Path) -> Path:
    return root / "cpjit" / "_generated" / f"{table_name()}.py"


def ensure_clang(log: Callable[[str], None]) -> clang.Clang:
    """A clang >= 19; as root on Debian, install clang-19 when there is none."""
    try:
        return clang.find_clang()
    except clang.ClangNotFound:
        can_install = (hasattr(os, "geteuid") and os.geteuid() == 0
                       and shutil.which("apt-get") and not os.environ.get("CPJIT_CLANG")
                       and os.environ.get("CPJIT_NO_APT") != "1")
        if not can_install:
            raise
    log(f"cpjit build: no clang >= {clang.MIN_VERSION} found; running as root, so installing "
        f"Debian package {clang.DEBIAN_PACKAGE} (set CPJIT_NO_APT=1 to prevent this)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", clang.DEBIAN_PACKAGE]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    return clang.find_clang()


def input_digest(root: Path, uop_dir: str, compiler: clang.Clang) -> str:
    """Digest of everything the table depends on."""
    h = hashlib.sha256()
    paths = {p for pattern in _INPUT_GLOBS for p in root.glob(pattern)}
    paths |= set((root / uop_dir).glob("*.c"))
    for path in sorted(paths):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    h.update(f"{compiler.version}\0{clang.command_line(compiler)}\0".encode())
    h.update(f"{sys.version}\0{clang.python_include_dirs()}\0".encode())
    return h.hexdigest()


def _current_digest(output: Path) -> str | None:
    try:
        with open(output) as file:
            for line in file:
                if line.startswith("# digest: "):
                    return line.split(":", 1)[1].strip()
                if not line.startswith("#"):
                    return None
    except OSError:
        return None
    return None


def _disassemble(objdump: str | None, obj: Path) -> list[str]:
    if objdump is None:
        return []
    out = subprocess.run([objdump, "-d", "-r", "--no-show-raw-insn", str(obj)],
                         capture_output=True, text=True, check=False).stdout
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line.endswith("<_JIT_ENTRY>:")), None)
    if start is None:
        return []
    return [line.replace("\t", " ").rstrip() for line in lines[start + 1:]
            if line.strip() and not line.startswith("Disassembly of section")]


# The interpreters whose frame layout the stencils and the runtime know
# (csrc/pyversion.h, cpjit/_versions/).
SUPPORTED_PYTHONS = ((3, 11),)


def build(root: Path, output: Path | None = None, *, uop_dir: str = "stencils/uops",
          force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Write the stencil table for the running interpreter, unless it is up to date."""
    from . import elf  # pyelftools: only when really building

    root = root.resolve()
    output = output or default_output(root)
    if sys.version_info[:2] not in SUPPORTED_PYTHONS:
        log(f"cpjit build: CPython {sys.version_info[0]}.{sys.version_info[1]} is not supported "
            f"yet (only {', '.join('%d.%d' % v for v in SUPPORTED_PYTHONS)}): no stencils; "
            "jitted functions will run in the interpreter")
        return output
    compiler = ensure_clang(log)
    uops = uopdefs.load(root, uop_dir)
    digest = input_digest(root, uop_dir, compiler)
    if not force and _current_digest(output) == digest:
        log(f"cpjit build: {output.relative_to(root) if output.is_relative_to(root) else output} "
            f"is up to date (digest {digest[:12]})")
        _byte_compile(output, log)
        return output
    started = time.perf_counter()
    include_dirs = [root / "stencils", root / "csrc"]
    objdump = clang.disassembler()
    with tempfile.TemporaryDirectory(prefix="cpjit-stencils-") as tmp:
        work = Path(tmp)
        jobs = [(SHIM, root / "stencils" / "shim.c")]
        for uop in uops:  # each uop's stencil, then its oparg variants
            for oparg in (None, *uop.variant_opargs):
                name = uop.name if oparg is None else variant_name(uop.name, oparg)
                source = work / f"{name}.c"
                source.write_text(cgen.stencil_source(uop, oparg))
                jobs.append((name, source))

        def compile_one(job):
            name, source = job
            obj = work / f"{name}.o"
            reshaped = clang.compile_stencil(compiler, source, obj, include_dirs)
            summary = [f"reshaped: {change}" for change in reshaped if not change.startswith("threaded")]
            return elf.read_stencil(obj, name), summary + _disassemble(objdump, obj)

        workers = max(1, min(len(jobs), os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            stencils = list(pool.map(compile_one, jobs))
    text = "\n".join(writer.table_lines(
        digest=digest, command=clang.command_line(compiler), clang_version=compiler.version,
        python=sys.version_info[:2], uops=uops, stencils=stencils)) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, output)
    elapsed = time.perf_counter() - started
    total_bytes = sum(len(s.code) for s, _ in stencils)
    variants = sum(len(uop.variant_opargs) for uop in uops)
    log(f"cpjit build: compiled {len(stencils)} stencils ({variants} of them oparg variants; "
        f"{total_bytes} bytes of code) with clang {compiler.version} in {elapsed:.1f}s "
        f"-> {output}")
    _byte_compile(output, log, rewritten=True)
    return output


def _byte_compile(table: Path, log: Callable[[str], None], rewritten: bool = False) -> None:
    """Write the table's bytecode cache, unless it is current.  The runtime
    imports the table (some 18,000 lines) at its first compilation: about 7 ms
    from bytecode, 160 ms from source, as it would be on every run wherever
    Python does not cache bytecode itself (PYTHONDONTWRITEBYTECODE=1, an
    editable install, a read-only tree).  A table just `rewritten` always is:
    its old cache may carry the same mtime (to the second) and size."""
    cached = Path(importlib.util.cache_from_source(str(table)))
    if not rewritten and _bytecode_is_current(table, cached):
        return
    py_compile.compile(str(table), cfile=str(cached), doraise=True)
    log(f"cpjit build: byte-compiled the table -> {cached}")


def _bytecode_is_current(table: Path, cached: Path) -> bool:
    """Whether `cached` is what the import system would accept for `table`
    (a timestamp-based .pyc of this interpreter: its header records the
    source's mtime and size)."""
    try:
        header = cached.read_bytes()[:16]
    except OSError:
        return False
    stat = table.stat()
    return (len(header) == 16 and header[:4] == importlib.util.MAGIC_NUMBER
            and header[4:8] == bytes(4)
            and int.from_bytes(header[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(header[12:16], "little") == stat.st_size & 0xFFFFFFFF)
