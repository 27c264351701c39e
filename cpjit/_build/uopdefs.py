"""Read the uop definitions in stencils/uops/*.c into UopDef records (the one source of truth)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from .._stencils import VARIANT_OPARGS

DECLARED_FLAGS = frozenset({"ESCAPES", "SYNCS_FRAME"})

# Parentheses nest (three levels) in the stack effect: sizes like
# "(oparg & 1) + ((oparg >> 1) & 1)".
_NESTED = r"[^()]"
for _ in range(3):
    _NESTED = rf"(?:[^()]|\((?:{_NESTED})*\))"
_HEADER = re.compile(
    r"^UOP\(\s*(?P<name>[A-Za-z0-9_]+)\s*,\s*\((?P<effect>" + _NESTED + r"*)\)\s*,"
    r"\s*(?P<flags>[^)]*)\)\s*\{",
    re.MULTILINE,
)
_ANY_HEADER = re.compile(r"^UOP\(", re.MULTILINE)
_ITEM = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<size>[^\]]+)\])?$")
_UOP_NAME = re.compile(r"^_[A-Z][A-Z0-9_]*$")

# Body macros that tell what a uop can do besides falling through.
_DERIVED_FLAGS = {
    "DEOPTS": re.compile(r"\b(?:DEOPT_IF|CHECK_TRACING_AFTER)\s*\("),
    "ERRORS": re.compile(r"\bERROR(?:_KEEP)?_IF\s*\("),
    # may side-exit after its effect (the interpreter resumes at the next instruction)
    "EXITS_AFTER": re.compile(r"\bCHECK_TRACING_AFTER\s*\("),
    "JUMPS": re.compile(r"\b(?:JUMP_IF|JUMP_POPPING|JUMP)\s*\("),
    "LEAVES": re.compile(r"\breturn\b"),
    "PEEKS": re.compile(r"\bPEEK\s*\("),  # reads stack items below its inputs
    "USES_OPARG": re.compile(r"\b(?:oparg|OPARG)\b"),  # OPARG: its slot (SLOT_I64(OPARG))
    "USES_OPERAND0": re.compile(r"\b(?:operand0|OPERAND0)\b"),
    "USES_OPERAND1": re.compile(r"\b(?:operand1|OPERAND1)\b"),
}


_JUMP_POPPING = re.compile(r"\bJUMP_POPPING\s*\(\s*(\d+)\s*\)")
_JUMP_IF = re.compile(r"\bJUMP(?:_IF)?\s*\(")

# The body ends with an unconditional way out.
_TERMINATES = re.compile(r"(?:\bJUMP\(\)|\b(?:DEOPT|ERROR)_IF\(1\)|\breturn\b[^;]*);\s*\Z")


class UopDefError(Exception):
    """A malformed uop definition; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class StackItem:
    """One input or output of a uop: a single object, or a run of `size` objects."""

    name: str
    size: str | None = None  # C (and Python) expression of oparg, for a run

    @property
    def count(self) -> str:
        return "1" if self.size is None else f"({self.size})"

    def __str__(self) -> str:
        return self.name if self.size is None else f"{self.name}[{self.size}]"


@dataclasses.dataclass(frozen=True)
class UopDef:
    """One UOP(...) block: name, stack effect, flags and C body."""

    name: str
    inputs: tuple[StackItem, ...]
    outputs: tuple[StackItem, ...]
    declared_flags: frozenset[str]
    body: str
    body_line: int  # line of the first body line in `path`
    doc: str
    path: str  # relative to the project root
    line: int

    @property
    def flags(self) -> frozenset[str]:
        derived = {flag for flag, pattern in _DERIVED_FLAGS.items() if pattern.search(self.body)}
        if _TERMINATES.search(self.body):
            derived.add("TERMINATES")  # never falls through to the next uop
        sizes = " ".join(item.size or "" for item in self.inputs + self.outputs)
        if re.search(r"\boparg\b", sizes):
            derived.add("USES_OPARG")
        return self.declared_flags | derived

    @property
    def jump_pops(self) -> int | None:
        """For a uop that branches with JUMP_POPPING(N): N, the items its jump
        pops off the stack as it was on entry (None: the jump has the same
        stack effect as falling through)."""
        counts = {int(n) for n in _JUMP_POPPING.findall(self.body)}
        if not counts:
            return None
        if len(counts) > 1 or _JUMP_IF.search(self.body):
            raise UopDefError(f"{self.source}: {self.name} branches with different stack effects")
        return counts.pop()

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def variant_opargs(self) -> tuple[int, ...]:
        """The opargs the build compiles a variant of this uop for (_stencils.VARIANT_OPARGS):
        all of them if an input or output is a run of exactly `oparg` items, else none."""
        if any(item.size == "oparg" for item in self.inputs + self.outputs):
            return VARIANT_OPARGS
        return ()


def total(items: tuple[StackItem, ...]) -> str:
    """The number of stack slots of `items`, as an expression of oparg."""
    terms = [item.count for item in items]
    constant = sum(1 for term in terms if term == "1")
    variable = [term for term in terms if term != "1"]
    parts = ([str(constant)] if constant or not variable else []) + variable
    return " + ".join(parts)


def _matching_brace(text: str, open_index: int, where: str) -> int:
    """Index of the `}` closing the `{` at open_index, skipping comments and literals."""
    depth = 0
    i = open_index
    while i < len(text):
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise UopDefError(f"{where}: unterminated comment")
            i = end + 2
            continue
        if c in "\"'":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise UopDefError(f"{where}: no closing brace")


def _parse_items(text: str, where: str) -> tuple[StackItem, ...]:
    items = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = _ITEM.match(part)
        if not match:
            raise UopDefError(f"{where}: bad stack item {part!r}")
        size = match["size"]
        if size is not None and not re.fullmatch(r"[\s\w+*\-&>()]+", size):
            raise UopDefError(f"{where}: size of {part!r} must be an expression of oparg")
        items.append(StackItem(match["name"], size.strip() if size else None))
    return tuple(items)


def _doc_above(text: str, start: int) -> str:
    lines = text[:start].splitlines()
    doc: list[str] = []
    while lines and lines[-1].lstrip().startswith("//"):
        doc.append(lines.pop().lstrip()[2:].strip())
    return " ".join(reversed(doc))


def parse_file(path: Path, root: Path) -> list[UopDef]:
    """All UopDefs of one definition file."""
    text = path.read_text()
    relative = path.relative_to(root).as_posix()
    uops = []
    parsed = {match.start() for match in _HEADER.finditer(text)}
    for start in (m.start() for m in _ANY_HEADER.finditer(text)):
        if start not in parsed:
            line = text.count("\n", 0, start) + 1
            raise UopDefError(f"{relative}:{line}: cannot read this UOP(NAME, (inputs -- outputs), "
                              "FLAGS) { header")
    for match in _HEADER.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        where = f"{relative}:{line}"
        name = match["name"]
        if not _UOP_NAME.match(name):
            raise UopDefError(f"{where}: uop names look like _UPPER_CASE, not {name!r}")
        effect = match["effect"]
        if "--" not in effect:
            raise UopDefError(f"{where}: stack effect needs `--`")
        before, after = effect.split("--", 1)
        inputs, outputs = _parse_items(before, where), _parse_items(after, where)
        flags = frozenset(f.strip() for f in match["flags"].split("|")) - {"0", ""}
        unknown = flags - DECLARED_FLAGS
        if unknown:
            raise UopDefError(f"{where}: unknown flags {sorted(unknown)}")
        if "SYNCS_FRAME" in flags and "ESCAPES" not in flags:
            raise UopDefError(f"{where}: SYNCS_FRAME only makes sense with ESCAPES")
        _check_names(inputs, outputs, where)
        open_brace = match.end() - 1
        close_brace = _matching_brace(text, open_brace, where)
        body = text[open_brace + 1:close_brace]
        body_line = text.count("\n", 0, open_brace + 1) + 1
        if body.startswith("\n"):
            body, body_line = body[1:], body_line + 1
        uops.append(UopDef(name, inputs, outputs, flags, body.rstrip() + "\n", body_line,
                           _doc_above(text, match.start()), relative, line))
    return uops


def _check_names(inputs: tuple[StackItem, ...], outputs: tuple[StackItem, ...], where: str) -> None:
    names = [item.name for item in inputs]
    if len(set(names)) != len(names):
        raise UopDefError(f"{where}: duplicate input names")
    for j, item in enumerate(outputs):
        if item.name in names:
            i = names.index(item.name)
            if total(inputs[:i]) != total(outputs[:j]) or inputs[i].size != item.size:
                raise UopDefError(
                    f"{where}: output {item} reuses an input name at another stack position")


def load(root: Path, directory: str = "stencils/uops") -> list[UopDef]:
    """Every uop of the project, sorted by name; duplicate names are an error."""
    uops: dict[str, UopDef] = {}
    for path in sorted((root / directory).glob("*.c")):
        for uop in parse_file(path, root):
            if uop.name in uops:
                raise UopDefError(f"{uop.source}: {uop.name} is already defined at "
                                  f"{uops[uop.name].source}")
            uops[uop.name] = uop
    if not uops:
        raise UopDefError(f"no UOP(...) definitions found in {directory}")
    return [uops[name] for name in sorted(uops)]
