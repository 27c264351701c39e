"""Reshape a stencil's assembly before it is assembled: hot path first, cold code apart.

clang lays out the likely path of a stencil first, ending with its tail jump
to _JIT_CONTINUE, and puts the unlikely blocks (errors, side exits,
deallocations) after it.  Two rewrites make that tail jump the last
instruction of the stencil, so the emitter can drop it when the next uop
follows:

1. A jump to a block that only jumps to a hole (`jmp _JIT_EXIT_TARGET`)
   jumps to the hole directly, and blocks nothing reaches any more go away.
2. `jCC _JIT_CONTINUE; jmp _JIT_X` (clang's conditional tail call) becomes
   `jNCC _JIT_X; jmp _JIT_CONTINUE`.
3. Every block after the first `jmp _JIT_CONTINUE` moves to a `.text.cold`
   section, which the emitter places after all the hot code.

Anything unexpected (another function, an unknown shape) leaves the assembly
as it is: the rewrite is an optimization, never a requirement.
"""

from __future__ import annotations

import dataclasses
import re

_LABEL = re.compile(r"^(\.L[\w$.]+):")
_JUMP = re.compile(r"^\s+(j[a-z]+)\s+(\S+?)(\s*#.*)?$")
_HOLE_TAIL = re.compile(r"^\s+jmp\s+(_JIT_[A-Z_0-9]+)(@PLT)?\s*(#.*)?$")
_CONTINUE = re.compile(r"^\s+jmp\s+_JIT_CONTINUE(@PLT)?\s*(#.*)?$")
COLD_SECTION = '\t.section\t.text.cold,"ax",@progbits'
_INVERSE = {}
for _a, _b in [("e", "ne"), ("z", "nz"), ("l", "ge"), ("le", "g"), ("b", "ae"), ("be", "a"),
               ("s", "ns"), ("o", "no"), ("p", "np")]:
    _INVERSE["j" + _a], _INVERSE["j" + _b] = "j" + _b, "j" + _a


@dataclasses.dataclass
class Block:
    label: str | None  # None for the entry block
    lines: list[str]

    def instructions(self) -> list[str]:
        return [line for line in self.lines
                if line.startswith("\t") and not line.lstrip().startswith(("#", "."))]


def _is_code_line(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def reshape(text: str) -> tuple[str, list[str]]:
    """The reshaped assembly and a list of what was done (empty: unchanged)."""
    lines = text.split("\n")
    try:
        start = lines.index("_JIT_ENTRY:") if "_JIT_ENTRY:" in lines else next(
            i for i, line in enumerate(lines) if line.startswith("_JIT_ENTRY:"))
        end = next(i for i, line in enumerate(lines) if line.startswith(".Lfunc_end0:"))
    except StopIteration:
        return text, []
    if any(line.startswith(".Lfunc_begin1") or line.startswith(".Lfunc_end1") for line in lines):
        return text, []  # more than one function: leave it alone
    body = lines[start + 1:end]
    blocks = [Block(None, [])]
    for line in body:
        match = _LABEL.match(line)
        if match:
            blocks.append(Block(match[1], [line]))
        else:
            blocks[-1].lines.append(line)
    done: list[str] = []

    # 1. Jump threading: .LBBx that is only `jmp _JIT_HOLE`.
    trampolines = {}
    for block in blocks:
        code = block.instructions()
        if block.label and len(code) == 1:
            match = _HOLE_TAIL.match(code[0])
            if match:
                trampolines[block.label] = match[1]
    if trampolines:
        for block in blocks:
            for i, line in enumerate(block.lines):
                match = _JUMP.match(line)
                if match and match[2] in trampolines:
                    block.lines[i] = f"\t{match[1]}\t{trampolines[match[2]]}"
                    done.append(f"threaded {match[1]} {match[2]} -> {trampolines[match[2]]}")
        referenced = {m[2] for b in blocks for line in b.lines if (m := _JUMP.match(line))}
        kept = []
        for index, block in enumerate(blocks):
            previous = kept[-1] if kept else None
            falls_in = previous is not None and not _ends_unconditionally(previous)
            if block.label in trampolines and block.label not in referenced and not falls_in:
                done.append(f"removed trampoline {block.label}")
                continue
            kept.append(block)
        blocks = kept

    # 2. Conditional tail call to _JIT_CONTINUE followed by a tail jump elsewhere.
    for block in blocks:
        code = [i for i, line in enumerate(block.lines) if line in block.instructions()]
        if len(code) < 2:
            continue
        first, second = block.lines[code[-2]], block.lines[code[-1]]
        conditional, tail = _JUMP.match(first), _HOLE_TAIL.match(second)
        if (conditional and tail and conditional[1] in _INVERSE
                and conditional[2].split("@")[0] == "_JIT_CONTINUE"
                and tail[1] != "_JIT_CONTINUE"):
            block.lines[code[-2]] = f"\t{_INVERSE[conditional[1]]}\t{tail[1]}"
            block.lines[code[-1]] = "\tjmp\t_JIT_CONTINUE"
            done.append(f"inverted {conditional[1]} _JIT_CONTINUE / jmp {tail[1]}")

    # 3. Hot/cold split after the first tail jump to _JIT_CONTINUE.
    split = None
    for index, block in enumerate(blocks):
        if any(_CONTINUE.match(line) for line in block.lines):
            split = index
            break
    if split is not None:
        tail = blocks[split].lines
        position = max(i for i, line in enumerate(tail) if _CONTINUE.match(line))
        if any(_is_code_line(line) for line in tail[position + 1:]):
            return text, []  # code after the tail jump inside one block: unexpected
        cold = blocks[split + 1:]
        if any(b.instructions() for b in cold):
            blocks = blocks[:split + 1] + [Block(None, [COLD_SECTION])] + cold
            done.append(f"moved {sum(1 for b in cold if b.label)} blocks to .text.cold")
    if not done:
        return text, []
    new_body = [line for block in blocks for line in block.lines]
    if any(b.lines == [COLD_SECTION] for b in blocks):
        new_body.append("\t.text")
    return "\n".join(lines[:start + 1] + new_body + lines[end:]), done


def _ends_unconditionally(block: Block) -> bool:
    code = block.instructions()
    if not code:
        return False
    last = code[-1].split()
    return bool(last) and last[0] in ("jmp", "ret", "retq", "ud2")
