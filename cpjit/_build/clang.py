"""Find clang >= 19 and compile stencils with the flags that give only simple relocations."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

MIN_VERSION = 19
DEBIAN_PACKAGE = f"clang-{MIN_VERSION}"

# -fno-pic with the medium code model and no "small" data: external data is
# reached through 64-bit absolute addresses, calls through a GOT (-fno-plt),
# and uops reach each other with 32-bit relative jumps.  No unwind tables,
# stack protector, jump tables or builtin calls to things we cannot patch.
FLAGS = (
    "--target=x86_64-unknown-linux-gnu",
    "-O3",
    "-std=c11",
    "-DNDEBUG",
    "-fno-pic",
    "-mcmodel=medium",
    "-mlarge-data-threshold=0",
    "-fno-asynchronous-unwind-tables",
    "-fno-stack-protector",
    "-fno-jump-tables",
    "-fno-plt",
    "-fno-builtin",
    "-Wall",
    "-Wno-unused-variable",
    "-Wno-unused-but-set-variable",
    "-Wno-unused-function",
    "-Werror=implicit-function-declaration",
    "-Werror=incompatible-pointer-types",
    "-Werror=int-conversion",
    "-Werror=return-type",
)


class ClangNotFound(RuntimeError):
    """No usable clang: the message says what to install."""


@dataclasses.dataclass(frozen=True)
class Clang:
    path: str
    version: str  # full version string, e.g. "19.1.7"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def _version_of(path: str) -> str | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except OSError:
        return None
    match = re.search(r"clang version (\d+\.\d+\.\d+)", out)
    return match[1] if match else None


def find_clang() -> Clang:
    """CPJIT_CLANG if set, else the first clang >= MIN_VERSION on PATH."""
    override = os.environ.get("CPJIT_CLANG")
    if override:
        version = _version_of(override)
        if version is None:
            raise ClangNotFound(f"CPJIT_CLANG={override!r} is not a working clang")
        clang = Clang(override, version)
        if clang.major < MIN_VERSION:
            raise ClangNotFound(f"CPJIT_CLANG={override!r} is clang {version}; "
                                f"cpjit needs clang >= {MIN_VERSION} (preserve_none)")
        return clang
    names = [f"clang-{v}" for v in range(MIN_VERSION, MIN_VERSION + 8)] + ["clang"]
    for name in names:
        path = shutil.which(name)
        if path is None:
            continue
        version = _version_of(path)
        if version is not None and int(version.split(".")[0]) >= MIN_VERSION:
            return Clang(path, version)
    raise ClangNotFound(
        f"cpjit needs clang >= {MIN_VERSION} to build its stencils and found none on PATH. "
        f"On Debian or Ubuntu: apt-get install {DEBIAN_PACKAGE} "
        f"(or point CPJIT_CLANG at a clang >= {MIN_VERSION}).")


def python_include_dirs() -> list[str]:
    include = sysconfig.get_paths()["include"]
    return [include, os.path.join(include, "internal")]


def compile_stencil(clang: Clang, source: Path, output: Path, include_dirs: list[Path],
                    reshape: bool = True) -> list[str]:
    """Compile one stencil source into an object file, through assembly that
    asm.reshape() rewrites (hot path first, cold code apart); returns what the
    rewrite did.  Raises with clang's message on failure."""
    from . import asm
    command = [clang.path, *FLAGS]
    command += [f"-I{d}" for d in include_dirs]
    command += [f"-I{d}" for d in python_include_dirs()]
    assembly = output.with_suffix(".s")
    _run([*command, "-S", "-o", str(assembly), str(source)], source)
    changes: list[str] = []
    if reshape:
        text, changes = asm.reshape(assembly.read_text())
        assembly.write_text(text)
    _run([clang.path, "--target=x86_64-unknown-linux-gnu", "-c", "-o", str(output),
          str(assembly)], assembly)
    return changes


def _run(command: list[str], source: Path) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"clang failed on {source.name}:\n{result.stderr}")


def command_line(clang: Clang) -> str:
    """The compile command as recorded in the generated table (machine-independent)."""
    return " ".join([Path(clang.path).name, *FLAGS, "-I<stencils>", "-I<csrc>", "-I<python-include>"])


def disassembler() -> str | None:
    """llvm-objdump matching the clang family, used for comments in the generated table."""
    for name in [f"llvm-objdump-{v}" for v in range(MIN_VERSION, MIN_VERSION + 8)] + ["llvm-objdump"]:
        path = shutil.which(name)
        if path:
            return path
    return None
