"""Dump mode: one function's compilation as text, from its source to the patched machine code.

Turned on by CPJIT_DUMP=1 (to stderr) or CPJIT_DUMP=DIR (one file per
compiled function), by @cpjit.jit(dump=True), and on demand by
wrapper.dump().  The text is a list of sections in pipeline order, each made
by one generator of lines: source, bytecode (with what tier 1 specialized),
uops after translation and after each pass, the stencils used, the patched
machine code (cpjit/disasm.py), side exits, stats.  Addresses are relative
to the code start unless absolute=True, so the text is the same from one run
to the next.

Also here: loading FILE.py:FUNC for `python -m cpjit dump|explain`, and the
perf map (CPJIT_PERF_MAP=1).
"""

from __future__ import annotations

import dataclasses
import difflib
import dis
import functools
import importlib.util
import inspect
import os
import sys
import textwrap
import types
from typing import Callable, Iterator

from . import disasm, pipeline, stencil_table, translate
from ._stencils import split_variant
from .ir import LABEL, Trace

Lines = Iterator[str]


@dataclasses.dataclass
class Subject:
    """What a dump is made of: one function's code and what compiling it did."""

    name: str  # module.qualname
    code: types.CodeType
    record: pipeline.CompileRecord | None = None
    # The reports whose traces the uop listings show: the record's own when
    # they were kept, else those of a recompilation made for the dump.
    listings: list[pipeline.PassReport] = dataclasses.field(default_factory=list)
    listings_note: str = ""
    fallback_reason: str | None = None
    warmup_calls: int | None = None  # calls counted by the wrapper until it compiled
    # The comprehensions compiled with it, whose dumps follow its own.
    nested: list["Subject"] = dataclasses.field(default_factory=list)

    @property
    def emitted(self):
        return self.record.emitted if self.record is not None else None

    def uop_numbers(self) -> dict[int, int]:
        """id(uop) -> its number N in the machine code ("uop N")."""
        if self.emitted is None:
            return {}
        layout = disasm.Layout(self.emitted)
        return {id(self.emitted.placements[i].uop): n for i, n in layout.numbers.items()}


def _listings(record: pipeline.CompileRecord) -> tuple[list[pipeline.PassReport], str]:
    """The per-pass traces of `record`: kept, or from compiling its code again with keep=True."""
    if record.reports and record.reports[0].trace is not None:
        return record.reports, ""
    try:
        again = pipeline.compile_code(record.code, record.qualname, keep=True, **record.options())
    except (translate.Unsupported, pipeline.PassError) as error:
        return [], f"per-pass listings not available: {error}"
    note = ("per-pass listings from a recompilation made for this dump: the function "
            "was compiled without dump mode")
    if record.trace is not None and _uop_lines(again.trace) != _uop_lines(record.trace):
        note += "; it ended in other uops than the installed code (tier 1 learned more since)"
    return again.reports, note


def subject_of(wrapper) -> Subject:
    """The Subject of a jit wrapper.  When it was compiled without dump mode,
    the per-pass uop listings come from compiling its code again with
    keep=True just for the dump (the machine code shown is the installed one)."""
    func = wrapper.__wrapped__
    subject = Subject(f"{wrapper.__module__}.{wrapper.__qualname__}", func.__code__,
                      fallback_reason=wrapper.fallback_reason, warmup_calls=wrapper._calls)
    record = wrapper._info
    if isinstance(record, pipeline.CompileRecord):
        subject.record = record
        subject.listings, subject.listings_note = _listings(record)
        subject.nested = [subject_of_nested(wrapper, n) for n in record.nested
                          if n.record is not None]
    return subject


def subject_of_nested(wrapper, nested) -> Subject:
    """The Subject of a comprehension compiled with a jit wrapper's function
    (cpjit/_api.py NestedCode)."""
    subject = Subject(f"{wrapper.__module__}.{nested.qualname}", nested.code,
                      record=nested.record, fallback_reason=nested.reason)
    subject.listings, subject.listings_note = _listings(nested.record)
    return subject


def subject_of_code(func) -> Subject:
    """Compile `func`'s code with every pass's trace kept, without running it."""
    subject = Subject(f"{func.__module__}.{func.__qualname__}", func.__code__)
    try:
        subject.record = pipeline.compile_code(func.__code__, func.__qualname__, keep=True,
                                               globals_=func.__globals__)
    except (translate.Unsupported, stencil_table.StencilTableMissing,
            pipeline.PassError) as error:
        subject.fallback_reason = str(error)
        return subject
    subject.listings = subject.record.reports
    return subject


# The text: one generator of lines per section.


@dataclasses.dataclass
class _Dump:
    """One dump being written: its subject, the options, and what sections share."""

    subject: Subject
    absolute: bool
    timings: bool

    @functools.cached_property
    def disassembler(self) -> disasm.Disassembler:
        code = self.subject.emitted.code
        return disasm.Disassembler(self.subject.emitted, code.read(),
                                   base=code.address if self.absolute else 0,
                                   hide=not self.absolute)

    @functools.cached_property
    def blocks(self) -> list[disasm.Block]:
        return self.disassembler.blocks()

    @functools.cached_property
    def numbers(self) -> dict[int, int]:
        return self.subject.uop_numbers()

    def shown(self, text: str) -> str:
        return text if self.absolute else disasm.hide_addresses(text)

    def address(self, offset: int) -> str:
        if self.absolute:
            return f"{self.subject.emitted.code.address + offset:012x}"
        return f"{offset:04x}"


def _heading(number: int, title: str, explanation: str) -> Lines:
    yield ""
    yield f"== {number}. {title} =="
    yield from textwrap.wrap(explanation, 88, initial_indent="   ", subsequent_indent="   ")
    yield ""


def _header(dump: _Dump) -> Lines:
    subject = dump.subject
    yield f"cpjit dump of {subject.name}"
    try:
        built = f"stencils built by clang {stencil_table.clang_version()}"
        if dump.absolute:  # the digest depends on the machine (include paths)
            built += f" (table {stencil_table.digest()[:12]})"
    except stencil_table.StencilTableMissing as error:
        built = str(error)
    yield f"CPython {sys.version_info[0]}.{sys.version_info[1]}; {built}"
    if subject.fallback_reason:
        yield f"runs in the interpreter: {subject.fallback_reason}"
    elif subject.emitted is None:
        yield "not compiled yet"
    else:
        yield f"compiled to {subject.emitted.size} bytes of machine code"
    if subject.emitted is not None:
        yield ("addresses: absolute" if dump.absolute else
               "addresses: offsets from the start of the code (absolute=True for addresses in memory)")


def _source(dump: _Dump) -> Lines:
    code = dump.subject.code
    try:
        lines, first = inspect.getsourcelines(code)
    except (OSError, TypeError):
        yield from _heading(1, "Source", "What the function says.")
        yield "  (source not available)"
        return
    yield from _heading(1, f"Source ({os.path.basename(code.co_filename)}, line {first})",
                        "What the function says.")
    for number, text in enumerate(lines, first):
        yield f"  {number:4}  {text.rstrip()}"


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _uops_by_instruction(dump: _Dump) -> dict[int, list[int]]:
    """Instruction offset (code units) -> the numbers of the uops in the machine code made for it."""
    result: dict[int, list[int]] = {}
    trace = dump.subject.record.trace if dump.subject.record else None
    for uop in trace.uops if trace else []:
        number = dump.numbers.get(id(uop))
        if number is not None:
            result.setdefault(uop.offset, []).append(number)
    return result


def _feedback(record) -> Callable[[int], str | None]:
    """The description of what the compiler knew of an instruction (by offset in code
    units) from the record's `feedback`, if it has one: its describe(offset), or
    get(offset) for a plain mapping."""
    feedback = getattr(record, "feedback", None)
    describe = getattr(feedback, "describe", None) or getattr(feedback, "get", None)
    if describe is None:
        return lambda offset: None
    return lambda offset: None if describe(offset) is None else str(describe(offset))


def _bytecode(dump: _Dump) -> Lines:
    subject = dump.subject
    yield from _heading(
        2, "Bytecode",
        "What CPython's compiler made of the source: offset, instruction, argument.  'tier 1' "
        "is the specialized form the interpreter rewrote the instruction into while it ran "
        "the function (its type feedback), 'uops' the micro-ops the JIT made of it (section 3).")
    record = subject.record
    unsupported = {2 * i.offset for i in record.trace.unsupported} if record and record.trace else set()
    feedback = _feedback(record)
    uops = _uops_by_instruction(dump)
    rows = []
    line = None
    for plain, adaptive in zip(dis.get_instructions(subject.code),
                               dis.get_instructions(subject.code, adaptive=True)):
        shown_line = ""
        if plain.positions.lineno is not None and plain.positions.lineno != line:
            line = plain.positions.lineno
            shown_line = str(line)
        argument = "" if plain.arg is None else str(plain.arg)
        if plain.argrepr:
            argrepr = dump.shown(plain.argrepr)
            argument += f" ({argrepr if len(argrepr) <= 32 else argrepr[:29] + '...'})"
        made = _ranges(uops.get(plain.offset // 2, []))
        if plain.offset in unsupported:
            made = "not compiled: side-exits"
        tier1 = adaptive.opname if adaptive.opname != plain.opname else ""
        note = feedback(plain.offset // 2)
        rows.append((shown_line, ">>" if plain.is_jump_target else "", plain.offset,
                     plain.opname, argument, tier1, made, None if note == tier1 else note))
    name = max([len("instruction")] + [len(row[3]) for row in rows])
    argument = max([len("argument")] + [len(row[4]) for row in rows])
    tier1 = max([len("tier 1")] + [len(row[5]) for row in rows])
    yield (f"  {'line':>4}  {'offset':>6}  {'instruction':<{name}}  {'argument':<{argument}}  "
           f"{'tier 1':<{tier1}}  uops")
    for shown_line, mark, offset, opname, arg, specialized, made, fed in rows:
        yield (f"  {shown_line:>4}  {mark:>2}{offset:>4}  {opname:<{name}}  {arg:<{argument}}  "
               f"{specialized:<{tier1}}  {made}").rstrip()
        if fed is not None:
            yield f"  {'':>4}  {'':>6}  feedback: {fed}"


def _uop_lines(trace: Trace, numbers: dict[int, int] | None = None,
               shown: Callable[[str], str] = str) -> list[str]:
    """One line per uop: its number (when given), instruction and description."""
    lines = []
    offset = None
    width = max((len(f"@{2 * i.offset} {i.name}") for i in trace.instructions), default=0)
    for uop in trace.uops:
        if uop.name == LABEL:
            lines.append(f"        >> @{2 * uop.oparg} (jump target)")
            offset = None
            continue
        number = "" if numbers is None else str(numbers.get(id(uop), "?"))
        where = ""
        if uop.offset != offset:
            offset = uop.offset
            instruction = trace.instruction_at(uop.offset)
            where = f"@{2 * uop.offset} {instruction.name if instruction else ''}"
        lines.append(f"  {number:>4}  {where:<{width}}  {shown(uop.describe())}".rstrip())
    return lines


def _diff(before: list[str], after: list[str]) -> Lines:
    """The changed uops, with one line of context, as - and + lines."""
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for k, group in enumerate(matcher.get_grouped_opcodes(1)):
        if k:
            yield "    ..."
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                yield from (f"    {line}" for line in before[i1:i2])
                continue
            yield from (f"  - {line}" for line in before[i1:i2])
            yield from (f"  + {line}" for line in after[j1:j2])


def _uops(dump: _Dump) -> Lines:
    subject = dump.subject
    yield from _heading(
        3, "Uops",
        "The bytecode lowered to micro-ops (uops): small steps, each with one precompiled "
        "piece of machine code.  Then each optimization pass rewrites the list; what it "
        "changed is listed under its name.  The last listing is what the machine code is "
        "made of: 'uop N' in section 5 is line N here.")
    record = subject.record
    if record is None or record.trace is None:
        yield f"  (no uops: {subject.fallback_reason or 'not compiled yet'})"
        return
    if subject.listings_note:
        yield from textwrap.wrap(f"({subject.listings_note})", 88, initial_indent="  ",
                                 subsequent_indent="   ")
    previous = None
    for index, report in enumerate(subject.listings or record.reports):
        trace, changes = report.trace, report.changes
        if index == 0:
            if trace is None:
                continue
            count = sum(u.name != LABEL for u in trace.uops)
            yield f"  after {report.name}: {count} uops"
            yield from _uop_lines(trace, shown=dump.shown)
            previous = trace
            yield ""
            continue
        if not changes:
            yield f"  {report.name}: uops unchanged"
            continue
        yield f"  {report.name}: {len(changes)} change{'s' if len(changes) > 1 else ''}"
        yield from (f"    {dump.shown(change)}" for change in changes)
        if trace is not None and previous is not None:
            yield from _diff(_uop_lines(previous, shown=dump.shown),
                             _uop_lines(trace, shown=dump.shown))
            previous = trace
    yield ""
    count = sum(u.name != LABEL for u in record.trace.uops)
    yield f"  final: {count} uops"
    yield from _uop_lines(record.trace, dump.numbers, dump.shown)
    for note in record.trace.notes:
        yield f"  note: {note}"


def _hex_lines(data: bytes, indent: str) -> Lines:
    for start in range(0, len(data), 16):
        chunk = data[start:start + 16].hex(" ")
        yield f"{indent}{start:04x}  {chunk}"


def _holes(holes, where: str, indent: str) -> Lines:
    for hole in holes:
        symbol = f" {hole.symbol}" if hole.symbol else ""
        yield (f"{indent}{where}+{hole.offset:#06x}  {hole.value.value}{symbol}, "
               f"{hole.reloc.value}, addend {hole.addend}")


def _stencils(dump: _Dump) -> Lines:
    yield from _heading(
        4, "Stencils",
        "The machine code of each uop as clang built it, before patching.  A hole is a place "
        "left blank in it (shown as 00 bytes): what goes there (an operand, the next uop's "
        "address, a C function...) is known only when a function is compiled.  A hole has a "
        "value kind (what) and a relocation kind (how it is written: abs64 = the 8-byte "
        "address, abs32s = a 4-byte value such as a raw-value slot's offset, rel32 = a 4-byte "
        "distance from the hole, gotrel32 = the distance to a GOT entry holding the address).  Hot code runs on the fast path; cold code (errors, "
        "exits) is placed after all the hot code.")
    emitted = dump.subject.emitted
    if emitted is None:
        yield "  (not compiled)"
        return
    stencils = stencil_table.stencils()
    specs = stencil_table.uops()
    used: dict[str, int] = {}
    for placement in emitted.placements:
        used[placement.stencil] = used.get(placement.stencil, 0) + 1
    for name, count in used.items():
        stencil = stencils[name]
        size = f"{len(stencil.code)} bytes of hot code"
        if stencil.trailing_jump:
            size += f" ({stencil.body_size} when the next uop follows: its final jump is dropped)"
        if stencil.cold:
            size += f", {len(stencil.cold)} of cold code"
        if stencil.data:
            size += f", {len(stencil.data)} of data"
        yield f"  {name}: used {count} time{'s' if count > 1 else ''}; {size}"
        uop, oparg = split_variant(name)
        if oparg is not None:
            yield f"    {uop} compiled for oparg {oparg} (a constant: no oparg hole)"
        spec = specs.get(uop)
        if spec is not None:
            flags = ", ".join(f for f in sorted(spec.flags) if not f.startswith("USES_"))
            yield f"    ({', '.join(spec.inputs)} -- {', '.join(spec.outputs)})  {flags}".rstrip()
            if spec.doc:
                yield from textwrap.wrap(spec.doc, 88, initial_indent="    ",
                                         subsequent_indent="    ")
        for part, data, holes in (("code", stencil.code, stencil.holes),
                                  ("cold", stencil.cold, stencil.cold_holes),
                                  ("data", stencil.data, stencil.data_holes)):
            if data:
                yield f"    {part}:"
                yield from _hex_lines(data, "      ")
                yield from _holes(holes, part, "      hole ")
        yield ""


def block_title(subject: Subject, block: disasm.Block) -> str:
    """A machine code block's heading: the uop and the instruction it is for."""
    if block.placement < 0:
        return block.title
    placement = subject.emitted.placements[block.placement]
    uop = placement.uop
    if uop is None or block.part != "hot":
        return block.title
    stub = placement.target >= 0
    offset = placement.target if stub else uop.offset
    instruction = subject.record.trace.instruction_at(offset)
    if instruction is None:
        return block.title
    line = f", line {instruction.line}" if instruction.line is not None else ""
    if stub:
        return f"{block.title} ({instruction.name}{line})"
    return f"{block.title}: @{2 * offset} {instruction.name}{line}"


def _machine_code(dump: _Dump) -> Lines:
    yield from _heading(
        5, "Machine code",
        "The stencils copied one after another and their holes patched: first the shim "
        "(the entry from C) and the hot code of every uop, in order, each falling into the "
        "next; then the side-exit stubs (each hands the frame back to the interpreter at one "
        "instruction) and error stubs; then all the cold code; then read-only data and the "
        "GOT.  '->' names where a jump or call goes; each 'hole' line is one patch: where, "
        "what kind, the number written and what it means.")
    if dump.subject.emitted is None:
        yield "  (not compiled)"
        return
    width = 12 if dump.absolute else 4
    for block in dump.blocks:
        yield f"  -- {block_title(dump.subject, block)}"
        for row in block.rows:
            text = f"{row.text:<40} {row.note}" if row.note else row.text
            yield f"  {dump.address(row.offset)}  {row.hex:<20} {text}".rstrip()
            for hole in row.holes:
                yield (f"  {'':{width}}    hole at {dump.address(hole.offset)}: {hole.value} "
                       f"({hole.reloc}) <- {hole.written} = {hole.meaning}")


def _exit_sources(dump: _Dump) -> dict[int, list[int]]:
    """Stub placement index -> the numbers of the uops whose code jumps to it."""
    layout = dump.disassembler.layout
    sources: dict[int, list[int]] = {}
    for block in dump.blocks:
        number = layout.numbers.get(block.placement)
        for row in block.rows if number is not None else ():
            index = layout.starts.get(row.target)
            if index is not None and layout.placements[index].kind in ("exit", "error"):
                numbers = sources.setdefault(index, [])
                if number not in numbers:
                    numbers.append(number)
    return {index: sorted(numbers) for index, numbers in sources.items()}


def _side_exits(dump: _Dump) -> Lines:
    yield from _heading(
        6, "Side exits",
        "Where the machine code gives the frame back to the interpreter, which goes on at "
        "that instruction: a side exit when a uop meets what it does not handle (a guard "
        "fails, an instruction is not compiled), an error stub when an exception is raised "
        "(the interpreter finds the handler or unwinds).  'taken' counts the side exits so far.")
    emitted = dump.subject.emitted
    if emitted is None:
        yield "  (not compiled)"
        return
    counts = emitted.stub_counts()
    sources = _exit_sources(dump)
    trace = dump.subject.record.trace
    rows = []
    for index, placement in enumerate(emitted.placements):
        if placement.kind not in ("exit", "error"):
            continue
        instruction = trace.instruction_at(placement.target)
        where = f"@{2 * placement.target} {instruction.name if instruction else ''}"
        line = instruction.line if instruction and instruction.line is not None else ""
        taken = ""
        if placement.kind == "exit":
            taken = str(counts[placement.counter])
        names = trace.code.co_varnames
        steps = [step.describe(lambda k: names[k] if k < len(names) else f"#{k}")
                 for step in placement.steps]
        rows.append((dump.address(placement.offset), placement.kind, where, line, taken,
                     _ranges(sources.get(index, [])), steps))
    stub = max([len("stub")] + [len(row[0]) for row in rows])
    width = max([len("resumes at")] + [len(row[2]) for row in rows])
    yield f"  {'stub':<{stub}}  {'kind':<5}  {'resumes at':<{width}}  {'line':>4}  {'taken':>6}  from uops"
    for address, kind, where, line, taken, uops, steps in rows:
        yield f"  {address:<{stub}}  {kind:<5}  {where:<{width}}  {line:>4}  {taken:>6}  {uops}"
        for step in steps:
            yield f"  {'':<{stub}}  {'':<5}    first: {step}"


def _stats(dump: _Dump) -> Lines:
    yield from _heading(7, "Stats", "Sizes, and how long each pass took.")
    subject = dump.subject
    if subject.warmup_calls is not None:
        yield f"  calls until compiled: {subject.warmup_calls}"
    record = subject.record
    if record is None:
        return
    if record.trace is not None:
        yield f"  uops: {record.uop_count}"
    if subject.emitted is not None:
        sizes: dict[str, int] = {}
        for block in dump.blocks:
            if block.part == "hot":
                part = subject.emitted.placements[block.placement].kind
            else:
                part = block.part
            sizes[part] = sizes.get(part, 0) + block.end - block.start
        parts = ", ".join(f"{part} {size}" for part, size in sizes.items())
        yield f"  code: {subject.emitted.size} bytes ({parts})"
        yield f"  holes patched: {len(subject.emitted.patches)}"
    if dump.timings:
        passes = ", ".join(f"{r.name} {r.seconds * 1e3:.3f} ms" for r in record.reports)
        yield f"  compile time: {record.seconds * 1e3:.3f} ms ({passes})"
    else:
        yield f"  passes: {', '.join(r.name for r in record.reports)}"
    if record.nested:
        yield ("  comprehensions compiled with it (their machine code runs when this code "
               "calls them; their dumps follow):")
        for nested in record.nested:
            if nested.record is None:
                yield f"    {nested.qualname}: runs in the interpreter: {nested.reason}"
            else:
                yield (f"    {nested.qualname}: {nested.record.uop_count} uops, "
                       f"{nested.record.emitted.size} bytes")


SECTIONS: list[Callable[[_Dump], Lines]] = [
    _header, _source, _bytecode, _uops, _stencils, _machine_code, _side_exits, _stats,
]


SECTION_NAMES = ("header", "source", "bytecode", "uops", "stencils", "machine code",
                 "side exits", "stats")


def render(subject: Subject, *, absolute: bool = False, timings: bool = True,
           sections: tuple[str, ...] = SECTION_NAMES) -> str:
    """The dump of `subject` as text: the chosen sections (all by default), in
    pipeline order."""
    unknown = set(sections) - set(SECTION_NAMES)
    if unknown:
        raise ValueError(f"unknown dump sections {sorted(unknown)}; choose from {SECTION_NAMES}")
    dump = _Dump(subject, absolute, timings)
    text = "".join(line + "\n" for name, section in zip(SECTION_NAMES, SECTIONS)
                   if name in sections for line in section(dump))
    for nested in subject.nested:  # (its comprehensions' dumps)
        text += "\n" + render(nested, absolute=absolute, timings=timings, sections=sections)
    return text


def dump_text(wrapper, *, absolute: bool = False, timings: bool = True,
              sections: tuple[str, ...] = SECTION_NAMES) -> str:
    """wrapper.dump(): the dump of a jit wrapper's compilation.  absolute=True shows
    addresses in memory; timings=False leaves out compile times (stable text);
    `sections` picks some of SECTION_NAMES."""
    return render(subject_of(wrapper), absolute=absolute, timings=timings, sections=sections)


def emit_dump(wrapper, record, *, force: bool = False) -> None:
    """Write the dump where CPJIT_DUMP says: 1 for stderr, else a directory."""
    target = os.environ.get("CPJIT_DUMP", "")
    text = dump_text(wrapper)
    if target in ("", "0", "1") or force and target in ("", "0"):
        sys.stderr.write(text)
        return
    os.makedirs(target, exist_ok=True)
    name = f"{wrapper.__module__}.{wrapper.__qualname__}".replace("<", "_").replace(">", "_")
    with open(os.path.join(target, name + ".txt"), "w") as file:
        file.write(text)


# python -m cpjit dump|explain FILE.py:FUNC


def load_function(spec: str):
    """The function `path/to/file.py:name` (or `:Class.method`), importing the file as a module."""
    path, colon, qualname = spec.rpartition(":")
    if not colon or not path or not qualname:
        raise ValueError(f"expected FILE.py:FUNCTION, got {spec!r}")
    path = os.path.abspath(path)
    name = os.path.splitext(os.path.basename(path))[0]
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) != path:
        name = f"_cpjit_target_{name}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None:
        raise ValueError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_spec.loader.exec_module(module)
    owner = module
    for part in qualname.split("."):
        namespace = vars(owner)
        if part not in namespace:
            raise LookupError(f"{path} has no {qualname}")
        owner = namespace[part]
    func = getattr(owner, "__func__", owner)  # staticmethod, classmethod
    func = getattr(func, "__wrapped__", func)  # already decorated with cpjit.jit
    if not isinstance(func, types.FunctionType):
        raise TypeError(f"{qualname} in {path} is not a function")
    return func


def _arguments(expression: str, namespace: dict) -> tuple[tuple, dict]:
    """`'10, key=2'` -> ((10,), {'key': 2}), evaluated in the function's module."""
    return eval(f"__cpjit_arguments__({expression})",
                {**namespace, "__cpjit_arguments__": lambda *a, **k: (a, k)})


def warm_up(func, call: str):
    """jit `func` and call it with the arguments `call` until it is compiled (or falls back)."""
    from . import _api

    args, kwargs = _arguments(call, func.__globals__)
    wrapper = _api.jit(func)
    for _ in range(_api.DEFAULT_WARMUP + 1):
        wrapper(*args, **kwargs)
        if wrapper.compiled or wrapper.fallback_reason:
            break
    return wrapper


def subject_of_target(spec: str, call: str | None = None) -> Subject:
    """FILE.py:FUNC compiled: run with the arguments `call` (as cpjit.jit would compile it
    in a program), or without running it when `call` is None."""
    func = load_function(spec)
    if call is None:
        return subject_of_code(func)
    return subject_of(warm_up(func, call))


def dump_file_function(spec: str, *, call: str | None = None, absolute: bool = False,
                       timings: bool = True) -> str:
    """The dump of FILE.py:FUNC (`python -m cpjit dump`)."""
    return render(subject_of_target(spec, call), absolute=absolute, timings=timings)


# The perf map: /tmp/perf-PID.map names JIT code for `perf report`.


def _regions(code, name: str) -> list[tuple[int, int, str]]:
    return [] if code is None else [(code.address, code.size, f"cpjit:{name}")]


def placement_regions(record, name: str) -> list[tuple[int, int, str]]:
    """(start, size, symbol) of each stencil copy of a compilation, so that a
    profile (perf report) names the uop where time goes: `cpjit:NAME:N UOP`
    with N the uop's line in the dump's final listing (exits and errors are
    named by the instruction they resume or report)."""
    emitted = record.emitted
    base = emitted.code.address
    regions = []
    uop_number = 0
    for placement in emitted.placements:
        if placement.kind == "uop":
            label = f"{uop_number} {placement.stencil}"
            uop_number += 1
        elif placement.kind == "shim":
            label = "entry"
        else:
            label = f"{placement.kind} @{2 * placement.target} {placement.stencil}"
        if placement.size:
            regions.append((base + placement.offset, placement.size, f"cpjit:{name}:{label}"))
        if placement.cold_size:
            regions.append((base + placement.cold_offset, placement.cold_size,
                            f"cpjit:{name}:{label} (cold)"))
    return regions


def perf_regions(wrapper) -> list[tuple[int, int, str]]:
    """(start, size, name) of the machine code a wrapper runs now (for its stats)."""
    return _regions(wrapper._code, f"{wrapper.__module__}.{wrapper.__qualname__}")


def write_perf_map(wrapper, record) -> None:
    """With CPJIT_PERF_MAP=1, add the regions of a new compilation to /tmp/perf-PID.map."""
    if os.environ.get("CPJIT_PERF_MAP", "") in ("", "0") or record.emitted is None:
        return
    regions = placement_regions(record, f"{wrapper.__module__}.{wrapper.__qualname__}")
    for nested in record.nested:  # (its comprehensions)
        if nested.record is not None:
            regions += placement_regions(nested.record, f"{wrapper.__module__}.{nested.qualname}")
    text = "".join(f"{start:x} {size:x} {name}\n" for start, size, name in regions)
    with open(f"/tmp/perf-{os.getpid()}.map", "a") as file:  # one write: threads don't mix lines
        file.write(text)
