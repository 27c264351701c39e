"""Patched machine code, disassembled: every jump, call and hole named (for the dump and the explainer).

The compiled region is cut into blocks in address order: each placement's
hot part and cold part (cpjit/emit.py), padding, the read-only data and the
GOT.  Each instruction row says where its jump or call goes (`-> uop 12
(_FOR_ITER_RANGE)`, `-> PyNumber_Add`, `-> side exit @ offset 34`) and which
holes the emitter patched in it, with the value written and what it means.

With `hide=True`, values that depend on where things are in memory (object
and symbol addresses, the code's own address) are shown as `<what>` instead
of numbers, so the text is the same from one run to the next.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import struct

from . import emit, stencil_table
from ._stencils import Reloc

_ADDRESS_IN_REPR = re.compile(r" at 0x[0-9a-fA-F]+")


def hide_addresses(text: str) -> str:
    """`<function f at 0x7f..>` -> `<function f>`: reprs without their memory address."""
    return _ADDRESS_IN_REPR.sub("", text)


@dataclasses.dataclass(slots=True)
class HoleNote:
    """One patched hole: what went in, how, and what it stands for."""

    offset: int  # of the patched bytes, from the code start
    value: str  # the HoleValue's name: "operand0", "continue", "symbol", ...
    reloc: str  # the relocation kind: "abs64", "abs32s", "abs32", "rel32", "gotrel32"
    written: str  # the number written, or "<hidden>"
    meaning: str  # "code+24", "uop 3 (_LOAD_FAST)", "&PyFloat_Type", ...


@dataclasses.dataclass(slots=True)
class Row:
    """One instruction (or 16 bytes of data, or one GOT entry)."""

    offset: int  # from the code start
    address: int  # as shown: the offset, or the address in memory
    hex: str  # the bytes as patched; hidden hole bytes are ".."
    text: str  # the instruction
    note: str  # where a jump or call goes, what a memory operand is
    target: int | None  # the offset it points at, if it points into the code
    holes: list[HoleNote]


@dataclasses.dataclass(slots=True)
class Block:
    """A contiguous piece of the code: one placement's hot or cold part, data, GOT or padding."""

    start: int
    end: int
    part: str  # "hot", "cold", "data", "got", "padding"
    title: str
    placement: int  # index into Emitted.placements, or -1
    rows: list[Row]


class Layout:
    """Names for the offsets of one compiled function's code."""

    def __init__(self, emitted: emit.Emitted):
        self.emitted = emitted
        self.placements = emitted.placements
        self.numbers: dict[int, int] = {}  # placement index -> uop number
        for index, placement in enumerate(self.placements):
            if placement.kind == "uop":
                self.numbers[index] = len(self.numbers)
        self.starts: dict[int, int] = {}  # hot start -> first placement there
        spans = []
        for index, placement in enumerate(self.placements):
            self.starts.setdefault(placement.offset, index)
            if placement.size:
                spans.append((placement.offset, placement.offset + placement.size, "hot", index))
            if placement.cold_size > 0:
                spans.append((placement.cold_offset, placement.cold_offset + placement.cold_size,
                              "cold", index))
        self.spans = sorted(spans)
        self._span_starts = [span[0] for span in self.spans]
        self.code_end = max((span[1] for span in self.spans), default=0)
        self.got_end = emitted.got_offset + 8 * len(emitted.got_symbols)

    def label(self, index: int) -> str:
        """`uop 3 (_LOAD_FAST)`, `side exit @ offset 34`, `error @ offset 24`, `shim`."""
        placement = self.placements[index]
        if placement.kind == "uop":
            return f"uop {self.numbers[index]} ({placement.stencil})"
        if placement.kind == "exit":
            return f"side exit @ offset {2 * placement.target}"
        if placement.kind == "error":
            return f"error @ offset {2 * placement.target}"
        if placement.kind == placement.stencil:
            return placement.kind
        return f"{placement.kind} ({placement.stencil})"

    def got_symbol(self, offset: int) -> str | None:
        if self.emitted.got_offset <= offset < self.got_end:
            return self.emitted.got_symbols[(offset - self.emitted.got_offset) // 8]
        return None

    def name(self, offset: int) -> str:
        """What is at `offset` from the code start, in words."""
        if offset in self.starts:
            return self.label(self.starts[offset])
        k = bisect.bisect_right(self._span_starts, offset) - 1
        if k >= 0 and offset < self.spans[k][1]:
            start, _, part, index = self.spans[k]
            where = "" if part == "hot" else " cold"
            if offset == start:
                return self.label(index) + where
            return f"{self.label(index)}{where} +{offset - start:#x}"
        symbol = self.got_symbol(offset)
        if symbol is not None:
            return f"GOT entry of {symbol}"
        if self.code_end <= offset < self.emitted.got_offset:
            return f"data +{offset - self.emitted.data_offset:#x}"
        return f"code +{offset:#x}"


_CALLER_SAVED = ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")
_LOW_BYTES = {"al": "ax", "ah": "ax", "bl": "bx", "bh": "bx", "cl": "cx", "ch": "cx", "dl": "dx",
              "dh": "dx", "sil": "si", "dil": "di", "bpl": "bp", "spl": "sp"}


def _register(name: str) -> str:
    """The 64-bit register a register name is part of: eax -> rax, r14d -> r14."""
    if re.fullmatch(r"r\d+[dwb]?", name):
        return name.rstrip("dwb")
    core = name[1:] if len(name) == 3 and name[0] in "er" else name
    core = _LOW_BYTES.get(core, core)
    return "r" + core if core in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp") else name


def _written(patch: emit.PatchRecord, code: bytes) -> int:
    if patch.reloc is Reloc.ABS64:
        return struct.unpack_from("<Q", code, patch.offset)[0]
    return struct.unpack_from("<i", code, patch.offset)[0]


def _width(patch: emit.PatchRecord) -> int:
    return 8 if patch.reloc is Reloc.ABS64 else 4


class Disassembler:
    """Turns one compiled function's code into blocks of rows."""

    def __init__(self, emitted: emit.Emitted, code: bytes, *, base: int = 0, hide: bool = True):
        import capstone  # only dumps need it

        self.emitted = emitted
        self.code = code
        self.base = base
        self.hide = hide
        self.layout = Layout(emitted)
        self.patches = sorted(emitted.patches, key=lambda p: p.offset)
        self._patch_offsets = [p.offset for p in self.patches]
        self._capstone = capstone
        self._cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self._cs.detail = True
        self._cs.skipdata = True

    # Holes.

    def _uop_field(self, patch: emit.PatchRecord):
        """The uop field a hole was filled from (oparg, operand0, ...), if any."""
        if patch.placement < 0:
            return None
        uop = self.layout.placements[patch.placement].uop
        return getattr(uop, patch.hole.value, None) if uop is not None else None

    def hidden(self, patch: emit.PatchRecord) -> bool:
        """Whether the value written depends on where things are in memory (and is hidden)."""
        if not self.hide or patch.reloc is not Reloc.ABS64:
            return False
        return not (patch.base == emit.BASE_ABSOLUTE and isinstance(self._uop_field(patch), int))

    def meaning(self, patch: emit.PatchRecord, target: int | None) -> str:
        """What a patched value stands for, in words.  `target` is where the
        instruction holding the patch points (a 32-bit relative hole stores the
        distance to it)."""
        field = self._uop_field(patch)
        if patch.reloc is Reloc.GOTREL32:
            return f"GOT entry of {patch.symbol}"
        if patch.hole.value.endswith("_slot") and patch.placement >= 0:
            uop = self.layout.placements[patch.placement].uop
            number = getattr(uop, patch.hole.value[:-len("_slot")], None)
            return f"slot {number} (its offset in the JitState)"
        if patch.base == emit.BASE_CODE:
            relative = patch.reloc is not Reloc.ABS64
            return self.layout.name(target if relative and target is not None else patch.value)
        if patch.base == emit.BASE_RWDATA:
            word = patch.value // 8
            exits = self.emitted.exit_offsets
            if word == emit.TOTAL_EXITS:
                return f"rw[{word}], the count of all side exits"
            if 0 <= word - emit.COUNTERS < len(exits):
                return (f"rw[{word}], the counter of side exit @ offset "
                        f"{2 * exits[word - emit.COUNTERS]}")
            return f"rw[{word}], an inline cache"
        if patch.symbol is not None:
            return f"&{patch.symbol}"
        if isinstance(field, int):
            return str(field)
        if field is not None:
            return hide_addresses(repr(field)) if self.hide else repr(field)
        if self.hidden(patch):
            return "an address (shown with absolute=True)"
        return f"{patch.value:#x}"

    def note(self, patch: emit.PatchRecord, target: int | None) -> HoleNote:
        if self.hidden(patch):
            written = "<hidden>"
        elif patch.reloc is Reloc.ABS64:
            written = f"{_written(patch, self.code):#018x}"
        else:
            written = f"{_written(patch, self.code):+#x}"
        return HoleNote(patch.offset, patch.hole.value, patch.reloc.value, written,
                        self.meaning(patch, target))

    def _patches_in(self, start: int, end: int) -> list[emit.PatchRecord]:
        first = bisect.bisect_left(self._patch_offsets, start)
        last = bisect.bisect_left(self._patch_offsets, end)
        return self.patches[first:last]

    def _row(self, offset: int, size: int, text: str, target: int | None = None,
             note: str = "") -> Row:
        """A row with its holes; hidden values masked in the hex and the text."""
        patches = self._patches_in(offset, offset + size)
        data = self.code[offset:offset + size]
        hex_bytes = [f"{b:02x}" for b in data]
        for patch in patches:
            if self.hidden(patch):
                value = _written(patch, self.code)
                short = f"&{patch.symbol}" if patch.symbol else patch.hole.value
                text = text.replace(f"{value:#x}", f"<{short}>")
                for k in range(patch.offset - offset,
                               min(patch.offset - offset + _width(patch), size)):
                    hex_bytes[k] = ".."
        return Row(offset, self.base + offset, "".join(hex_bytes), text, note, target,
                   [self.note(p, target) for p in patches])

    # Instructions.

    def _target(self, instruction) -> tuple[int | None, bool]:
        """Where an instruction points in the code (a jump or call target, a
        RIP-relative operand), and whether it jumps or calls there."""
        if instruction.id == 0:  # bytes capstone could not decode
            return None, False
        capstone = self._capstone
        x86 = capstone.x86
        branch = bool(instruction.group(capstone.CS_GRP_JUMP)
                      or instruction.group(capstone.CS_GRP_CALL))
        for operand in instruction.operands:
            if operand.type == x86.X86_OP_IMM and branch:
                return operand.imm - self.base, True
            if operand.type == x86.X86_OP_MEM and operand.mem.base == x86.X86_REG_RIP:
                return (instruction.address + instruction.size + operand.mem.disp - self.base,
                        branch)
        return None, branch

    def _note(self, target: int, branch: bool, memory: bool) -> str:
        """`-> uop 3 (_LOAD_FAST)`, `-> PyNumber_Add`, `&_Py_Dealloc (from the GOT)`."""
        symbol = self.layout.got_symbol(target)
        if symbol is not None and memory:
            return f"-> {symbol}" if branch else f"&{symbol} (from the GOT)"
        return ("-> " if branch else "") + self.layout.name(target)

    def _instructions(self, start: int, end: int) -> list[Row]:
        """Rows for the instructions in [start, end).  A call or jump through a
        register is named after the symbol last loaded into it in this block."""
        rows = []
        loaded: dict[str, tuple[str, int]] = {}  # register -> (symbol, where it was loaded)
        for instruction in self._cs.disasm(self.code[start:end], self.base + start):
            offset = instruction.address - self.base
            text = f"{instruction.mnemonic} {instruction.op_str}".strip()
            target, branch = self._target(instruction)
            note = "" if target is None else self._note(target, branch, "[" in text)
            if branch and target is None and instruction.operands:
                register = _register(instruction.op_str)
                symbol, where = loaded.get(register, (None, 0))
                note = (f"-> {symbol} (loaded at {self.base + where:04x})" if symbol
                        else f"-> the address in {instruction.op_str}")
            row = self._row(offset, instruction.size, text, target, note)
            rows.append(row)
            self._track(instruction, row, loaded)
        return rows

    def _track(self, instruction, row: Row, loaded: dict[str, tuple[str, int]]) -> None:
        """Update which registers hold a known symbol's address after `instruction`."""
        if instruction.id == 0:
            return
        _, written = instruction.regs_access()
        for register in written:
            loaded.pop(_register(instruction.reg_name(register)), None)
        if instruction.group(self._capstone.CS_GRP_CALL):
            for register in _CALLER_SAVED:
                loaded.pop(register, None)
        destination = instruction.operands[0] if instruction.operands else None
        if destination is None or destination.type != self._capstone.x86.X86_OP_REG:
            return
        symbol = None
        if row.note.endswith(" (from the GOT)"):
            symbol = row.note[1:-len(" (from the GOT)")]
        elif instruction.mnemonic == "movabs":
            symbol = next((h.meaning[1:] for h in row.holes if h.meaning.startswith("&")), None)
        if symbol:
            loaded[_register(instruction.reg_name(destination.reg))] = (symbol, row.offset)

    def _data(self, start: int, end: int) -> list[Row]:
        return [self._row(offset, min(16, end - offset), "")
                for offset in range(start, end, 16)]

    def _exit_record(self, offset: int, placement) -> list[Row]:
        """An exit record's words (csrc/runtime.h), each with what it means."""
        meanings = [f"counts into rw[{emit.COUNTERS + placement.counter}]",
                    f"resumes at offset {2 * placement.target}",
                    f"{len(placement.steps)} step{'' if len(placement.steps) == 1 else 's'}"]
        for step in placement.steps:
            meanings += [step.describe(), "", ""]
        addresses = {3 + 3 * k + 2 for k, step in enumerate(placement.steps)
                     if step.action == "const"}  # an object's address: hidden
        rows = []
        for k, meaning in enumerate(meanings):
            value = struct.unpack_from("<q", self.code, offset + 8 * k)[0]
            hidden = self.hide and k in addresses
            row = self._row(offset + 8 * k, 8, ".quad <address>" if hidden else f".quad {value}"
                            + (f"    # {meaning}" if meaning else ""))
            if hidden:
                row.hex = ".." * 8
            rows.append(row)
        return rows

    def _got(self) -> list[Row]:
        got = self.emitted.got_offset
        return [self._row(got + 8 * k, 8, f".quad &{symbol}")
                for k, symbol in enumerate(self.emitted.got_symbols)]

    # Blocks.

    def blocks(self) -> list[Block]:
        """The whole code, in address order."""
        layout = self.layout
        blocks = [Block(p.offset, p.offset, "hot", layout.label(index), index, [])
                  for index, p in enumerate(layout.placements) if not p.size]
        for start, end, part, index in layout.spans:
            title = layout.label(index) + ("" if part == "hot" else ", cold part")
            blocks.append(Block(start, end, part, title, index, self._instructions(start, end)))
        got = self.emitted.got_offset
        stencils = stencil_table.stencils()
        records = sorted(self.emitted.exit_records.items(), key=lambda item: item[1])
        data_end = records[0][1] if records else got
        if any(stencils[p.stencil].data for p in layout.placements):
            start = self.emitted.data_offset
            blocks.append(Block(start, data_end, "data", "read-only data of the stencils", -1,
                                self._data(start, data_end)))
        for index, offset in records:
            placement = layout.placements[index]
            words = 3 + 3 * len(placement.steps)
            blocks.append(Block(offset, offset + 8 * words, "data",
                                f"exit record of {layout.label(index)}", index,
                                self._exit_record(offset, placement)))
        if self.emitted.got_symbols:
            blocks.append(Block(got, layout.got_end, "got",
                                "GOT: the addresses of the functions the code calls", -1,
                                self._got()))
        return _with_padding(blocks)


def _with_padding(blocks: list[Block]) -> list[Block]:
    """`blocks` sorted, with a padding block in each gap between two of them."""
    result: list[Block] = []
    for block in sorted(blocks, key=lambda b: b.start):
        if result and result[-1].end < block.start:
            gap = block.start - result[-1].end
            result.append(Block(result[-1].end, block.start, "padding",
                                f"{gap} bytes of padding", -1, []))
        result.append(block)
    return result
