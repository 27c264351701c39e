"""Read a stencil's object file (ELF, x86-64) into a Stencil; anything unexpected fails the build."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from .._stencils import Hole, HoleValue, Reloc, Stencil, hole_value_of_symbol

ENTRY_SYMBOL = "_JIT_ENTRY"

# x86-64 psABI relocation numbers (pyelftools' table lacks GOTPCRELX).
_RELOC_NAMES = {1: "R_X86_64_64", 2: "R_X86_64_PC32", 4: "R_X86_64_PLT32", 9: "R_X86_64_GOTPCREL",
                10: "R_X86_64_32", 11: "R_X86_64_32S", 12: "R_X86_64_16", 41: "R_X86_64_GOTPCRELX",
                42: "R_X86_64_REX_GOTPCRELX"}
_RELOCS = {1: Reloc.ABS64, 2: Reloc.REL32, 4: Reloc.REL32, 9: Reloc.GOTREL32,
           10: Reloc.ABS32, 11: Reloc.ABS32S, 41: Reloc.GOTREL32, 42: Reloc.GOTREL32}
_JUMP_HOLES = {HoleValue.CONTINUE, HoleValue.JUMP_TARGET, HoleValue.EXIT_TARGET,
               HoleValue.EXIT_AFTER, HoleValue.ERROR_TARGET}
_VALUE_HOLES = {HoleValue.OPARG, HoleValue.OPERAND0, HoleValue.OPERAND1, HoleValue.INSTR}
_SLOT_HOLES = {HoleValue.OPARG_SLOT, HoleValue.OPERAND0_SLOT, HoleValue.OPERAND1_SLOT}


class StencilError(Exception):
    """An object file the emitter could not patch correctly."""


def read_stencil(path: Path, name: str) -> Stencil:
    """The Stencil of the object file at `path`."""
    with open(path, "rb") as file:
        elf = ELFFile(file)
        if elf["e_machine"] != "EM_X86_64":
            raise StencilError(f"{name}: not an x86-64 object ({elf['e_machine']})")
        return _read(elf, name)


COLD_SECTION = ".text.cold"


def _read(elf: ELFFile, name: str) -> Stencil:
    text_index = cold_index = None
    code = cold = b""
    data = bytearray()
    data_align = 1
    data_offsets: dict[int, int] = {}  # section index -> offset in `data`
    for index, section in enumerate(elf.iter_sections()):
        flags = section["sh_flags"]
        if not flags & SH_FLAGS.SHF_ALLOC or section["sh_size"] == 0:
            continue
        if flags & SH_FLAGS.SHF_WRITE:
            raise StencilError(f"{name}: writable section {section.name}: stencils cannot keep "
                               "mutable state (no static variables)")
        if flags & SH_FLAGS.SHF_EXECINSTR:
            if section.name == COLD_SECTION and cold_index is None:
                cold_index, cold = index, section.data()
            elif section.name == ".text" and text_index is None:
                text_index, code = index, section.data()
            else:
                raise StencilError(f"{name}: unexpected code section {section.name}")
            continue
        if section["sh_type"] == "SHT_NOBITS":
            raise StencilError(f"{name}: unexpected section {section.name}")
        align = max(section["sh_addralign"], 1)
        data_align = max(data_align, align)
        data.extend(b"\0" * (-len(data) % align))
        data_offsets[index] = len(data)
        data.extend(section.data())
    if text_index is None:
        raise StencilError(f"{name}: no code")
    symtab = elf.get_section_by_name(".symtab")
    entry = [s for s in symtab.iter_symbols() if s.name == ENTRY_SYMBOL]
    if len(entry) != 1 or entry[0]["st_shndx"] != text_index or entry[0]["st_value"] != 0:
        raise StencilError(f"{name}: {ENTRY_SYMBOL} must be defined at the start of the code")

    holes: list[Hole] = []
    cold_holes: list[Hole] = []
    data_holes: list[Hole] = []
    sections = _Sections(text_index, cold_index, data_offsets)
    for section in elf.iter_sections():
        if section["sh_type"] == "SHT_REL":
            raise StencilError(f"{name}: REL relocations are not supported (expected RELA)")
        if section["sh_type"] != "SHT_RELA":
            continue
        target = section["sh_info"]
        if target == text_index:
            into, base = holes, 0
        elif target == cold_index:
            into, base = cold_holes, 0
        elif target in data_offsets:
            into, base = data_holes, data_offsets[target]
        else:
            continue  # relocations of a section we do not keep (none expected)
        for reloc in section.iter_relocations():
            into.append(_hole(name, reloc, symtab, base, sections))
    for group in (holes, cold_holes, data_holes):
        group.sort(key=lambda h: h.offset)

    trailing = (len(code) >= 5 and code[-5] == 0xE9 and bool(holes)
                and holes[-1].offset == len(code) - 4 and holes[-1].value is HoleValue.CONTINUE
                and holes[-1].reloc is Reloc.REL32 and holes[-1].addend == -4)
    return Stencil(name=name, code=bytes(code), data=bytes(data), holes=tuple(holes),
                   data_holes=tuple(data_holes), cold=bytes(cold), cold_holes=tuple(cold_holes),
                   data_align=data_align, trailing_jump=trailing)


@dataclasses.dataclass
class _Sections:
    text: int
    cold: int | None
    data: dict[int, int]  # section index -> offset in the stencil's data


def _hole(name, reloc, symtab, base, sections: _Sections) -> Hole:
    kind = _RELOCS.get(reloc["r_info_type"])
    symbol = symtab.get_symbol(reloc["r_info_sym"])
    offset = base + reloc["r_offset"]
    where = (f"{name}: {_RELOC_NAMES.get(reloc['r_info_type'], reloc['r_info_type'])} "
             f"at {offset:#x} against {symbol.name or '<section>'}")
    if kind is None:
        raise StencilError(f"{where}: relocation kind not supported")
    addend = reloc["r_addend"]
    shndx = symbol["st_shndx"]
    if shndx == "SHN_UNDEF":
        value = hole_value_of_symbol(symbol.name)
        if value is None:
            if kind is Reloc.REL32:
                raise StencilError(f"{where}: an external symbol reached with a 32-bit relative "
                                   "relocation may be out of range (expected a GOT load)")
            return Hole(offset, kind, HoleValue.SYMBOL, symbol.name, addend)
        if value in _VALUE_HOLES and kind is not Reloc.ABS64:
            raise StencilError(f"{where}: value holes must be 64-bit absolute")
        if value in _SLOT_HOLES and kind not in (Reloc.ABS32S, Reloc.ABS32):
            raise StencilError(f"{where}: slot holes are 32-bit absolute (displacements)")
        if kind in (Reloc.ABS32S, Reloc.ABS32) and value not in _SLOT_HOLES:
            raise StencilError(f"{where}: only slot holes may be 32-bit absolute")
        if value in _JUMP_HOLES and kind is Reloc.GOTREL32:
            raise StencilError(f"{where}: jump holes cannot go through the GOT")
        return Hole(offset, kind, value, None, addend)
    if kind is Reloc.GOTREL32:
        raise StencilError(f"{where}: GOT reference to a local symbol")
    if shndx == sections.text:
        return Hole(offset, kind, HoleValue.CODE, None, addend + symbol["st_value"])
    if shndx == sections.cold:
        return Hole(offset, kind, HoleValue.COLD, None, addend + symbol["st_value"])
    if shndx in sections.data:
        return Hole(offset, kind, HoleValue.DATA, None,
                    addend + sections.data[shndx] + symbol["st_value"])
    raise StencilError(f"{where}: symbol in a section that is not kept")
