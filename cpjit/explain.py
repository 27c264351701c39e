"""The explainer: one HTML page with a function's source, bytecode, uops and machine code side by side.

`python -m cpjit explain FILE.py:FUNC -o page.html`.  Hovering a line
highlights what it became, and what it came from, in the other columns;
clicking keeps the highlight and scrolls the other columns to it.  Hovering
a hole (an underlined byte run in the machine code) shows the value patched
into it.  A function's comprehensions (compiled with it) each have their
own four columns, a tab away.  The page is self-contained: style and script
inline, no network.
"""

from __future__ import annotations

import dis
import html
import inspect
import os
from pathlib import Path
from typing import Iterator

from . import disasm, dump, stencil_table
from .ir import LABEL

_STYLE = """
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.35 system-ui, sans-serif; color: #222; background: #fafafa;
       display: flex; flex-direction: column; height: 100vh; }
header { padding: 6px 12px; border-bottom: 1px solid #ccc; background: #fff; }
header h1 { font-size: 16px; margin: 0 0 2px 0; }
header p { margin: 2px 0; color: #555; }
main { display: grid; flex: 1; min-height: 0;
       grid-template-columns: minmax(0, 1fr) minmax(0, 1.2fr) minmax(0, 1.3fr) minmax(0, 2.2fr); }
main[hidden] { display: none; }
nav { padding: 4px 12px 0 12px; background: #fff; border-bottom: 1px solid #ccc; }
nav button { font: inherit; border: 1px solid #ccc; border-bottom: none; background: #eee;
             padding: 2px 8px; cursor: pointer; }
nav button.on { background: #fafafa; font-weight: bold; }
section { display: flex; flex-direction: column; min-height: 0; border-right: 1px solid #ccc; }
section h2 { font-size: 13px; margin: 0; padding: 4px 8px; background: #eee;
             border-bottom: 1px solid #ccc; }
.body { overflow: auto; flex: 1; font: 12px/1.4 ui-monospace, monospace; white-space: pre; }
.row { padding: 0 8px; cursor: pointer; }
.row:hover { outline: 1px solid #999; }
.row.hl { background: #fff3b0; }
.row.hl2 { background: #ffd166; }
.block { padding: 4px 8px 0 8px; color: #06c; font-weight: bold; }
.dim { color: #888; }
.note { color: #086; }
.hole { text-decoration: underline dotted #c00; color: #c00; cursor: help; }
#info { height: 44px; overflow: auto; padding: 4px 12px; background: #223; color: #eee; font: 12px ui-monospace, monospace; }
details { margin: 2px 0; }
details pre { max-height: 40vh; overflow: auto; background: #fff; border: 1px solid #ccc;
              padding: 6px; font-size: 11px; }
"""

_SCRIPT = """
(function () {
  const info = document.getElementById('info');
  let lit = [], pinned = null;
  function clear() {
    for (const row of lit) row.classList.remove('hl', 'hl2');
    lit = [];
  }
  // Each <main> is one code object's columns (the function, or one of its
  // comprehensions): rows light up within their own main only.
  for (const main of document.querySelectorAll('main')) {
    const rows = Array.from(main.querySelectorAll('.row'));
    const byIns = new Map(), byUop = new Map();
    for (const row of rows) {
      for (const key of (row.dataset.ins || '').split(' ').filter(Boolean)) {
        if (!byIns.has(key)) byIns.set(key, []);
        byIns.get(key).push(row);
      }
      if (row.dataset.uop) {
        if (!byUop.has(row.dataset.uop)) byUop.set(row.dataset.uop, []);
        byUop.get(row.dataset.uop).push(row);
      }
    }
    function light(row) {
      clear();
      if (!row) return;
      for (const key of (row.dataset.ins || '').split(' ').filter(Boolean)) {
        for (const other of byIns.get(key) || []) { other.classList.add('hl'); lit.push(other); }
      }
      for (const other of byUop.get(row.dataset.uop) || []) {
        other.classList.add('hl2'); lit.push(other);
      }
      row.classList.add('hl2'); lit.push(row);
      info.textContent = row.dataset.info || row.textContent.trim();
    }
    function reveal(row) {
      for (const column of main.querySelectorAll('section .body')) {
        if (column.contains(row)) continue;
        const first = lit.find(other => column.contains(other));
        if (first) first.scrollIntoView({block: 'center'});
      }
    }
    for (const row of rows) {
      row.addEventListener('mouseenter', () => light(row));
      row.addEventListener('mouseleave', () => light(main.contains(pinned) ? pinned : null));
      row.addEventListener('click', () => { pinned = row; light(row); reveal(row); });
    }
    for (const note of main.querySelectorAll('.note[data-target]')) {
      note.addEventListener('click', event => {
        const target = document.getElementById(main.dataset.prefix + 'm' + note.dataset.target);
        if (target) { event.stopPropagation(); pinned = target; light(target);
                      target.scrollIntoView({block: 'center'}); }
      });
    }
  }
  for (const hole of document.querySelectorAll('.hole')) {
    hole.addEventListener('mouseenter', () => { info.textContent = hole.dataset.hole; });
  }
  // The tabs: one main shown at a time.
  const tabs = Array.from(document.querySelectorAll('nav button'));
  for (const tab of tabs) {
    tab.addEventListener('click', () => {
      clear(); pinned = null;
      for (const other of tabs) other.classList.toggle('on', other === tab);
      for (const main of document.querySelectorAll('main')) {
        main.hidden = main.id !== tab.dataset.main;
      }
      info.textContent = tab.title;
    });
  }
})();
"""

e = html.escape


def _row(content: str, *, ins=(), uop: int | None = None, info: str = "",
         ident: str = "") -> str:
    attributes = f' data-ins="{" ".join(str(k) for k in ins)}"' if ins else ""
    if uop is not None:
        attributes += f' data-uop="{uop}"'
    if info:
        attributes += f' data-info="{e(info)}"'
    if ident:
        attributes += f' id="{ident}"'
    return f'<div class="row"{attributes}>{content}</div>'


def _instructions(subject: dump.Subject) -> list[tuple[dis.Instruction, dis.Instruction, int]]:
    """(instruction, its adaptive form, its line) for every instruction."""
    result = []
    line = subject.code.co_firstlineno
    for plain, adaptive in zip(dis.get_instructions(subject.code),
                               dis.get_instructions(subject.code, adaptive=True)):
        line = plain.positions.lineno if plain.positions.lineno is not None else line
        result.append((plain, adaptive, line))
    return result


def _source(subject: dump.Subject, instructions) -> Iterator[str]:
    try:
        lines, first = inspect.getsourcelines(subject.code)
    except (OSError, TypeError):
        yield '<div class="dim">(source not available)</div>'
        return
    for number, text in enumerate(lines, first):
        offsets = [plain.offset for plain, _, line in instructions if line == number]
        yield _row(f'<span class="dim">{number:4}</span>  {e(text.rstrip())}', ins=offsets,
                   info=f"line {number}: {len(offsets)} bytecode instructions")


def _bytecode(subject: dump.Subject, instructions) -> Iterator[str]:
    for plain, adaptive, line in instructions:
        argument = "" if plain.arg is None else f" {plain.arg}"
        if plain.argrepr:
            argument += f" ({plain.argrepr})"
        tier1 = f"  {adaptive.opname}" if adaptive.opname != plain.opname else ""
        mark = ">>" if plain.is_jump_target else "  "
        yield _row(f'{mark}{plain.offset:4} {e(plain.opname)}{e(argument)}'
                   f'<span class="note">{e(tier1)}</span>',
                   ins=[plain.offset],
                   info=f"@{plain.offset} {plain.opname}{argument}, line {line}"
                        + (f"; tier 1 specialized it to {adaptive.opname}" if tier1 else ""))


def _uops(subject: dump.Subject, numbers: dict[int, int]) -> Iterator[str]:
    record = subject.record
    if record is None or record.trace is None:
        yield f'<div class="dim">(no uops: {e(subject.fallback_reason or "not compiled")})</div>'
        return
    specs = stencil_table.uops()
    for uop in record.trace.uops:
        if uop.name == LABEL:
            yield f'<div class="dim">  &gt;&gt; @{2 * uop.oparg}</div>'
            continue
        number = numbers.get(id(uop))
        spec = specs.get(uop.name)
        yield _row(f'<span class="dim">{number if number is not None else "":>3}</span> '
                   f'<span class="dim">@{2 * uop.offset:<4}</span>{e(uop.describe())}',
                   ins=[2 * uop.offset], uop=number,
                   info=f"uop {number}: {uop.describe()}" + (f" - {spec.doc}" if spec else ""))


def _hex(row: disasm.Row) -> str:
    """A row's bytes, each hole's bytes in a span that shows its value."""
    spans: dict[int, disasm.HoleNote] = {}
    for hole in row.holes:
        spans[hole.offset - row.offset] = hole
    parts = []
    k = 0
    data = row.hex
    while k < len(data) // 2:
        hole = spans.get(k)
        if hole is None:
            parts.append(data[2 * k:2 * k + 2])
            k += 1
            continue
        width = 8 if hole.reloc == "abs64" else 4
        text = (f"hole {hole.value} ({hole.reloc}) at +{hole.offset:04x}: "
                f"wrote {hole.written} = {hole.meaning}")
        parts.append(f'<span class="hole" title="{e(text)}" data-hole="{e(text)}">'
                     f'{data[2 * k:2 * (k + width)]}</span>')
        k += width
    return "".join(parts)


def _machine_code(subject: dump.Subject, prefix: str = "") -> Iterator[str]:
    emitted = subject.emitted
    if emitted is None:
        yield f'<div class="dim">({e(subject.fallback_reason or "not compiled")})</div>'
        return
    disassembler = disasm.Disassembler(emitted, emitted.code.read(), hide=False)
    layout = disassembler.layout
    for block in disassembler.blocks():
        title = dump.block_title(subject, block)
        yield f'<div class="block">{e(title)}</div>'
        placement = emitted.placements[block.placement] if block.placement >= 0 else None
        ins, number = [], None
        if placement is not None and placement.uop is not None:
            ins = [2 * (placement.target if placement.target >= 0 else placement.uop.offset)]
            number = layout.numbers.get(block.placement)
        for row in block.rows:
            note = ""
            if row.note:
                target = f' data-target="{row.target}"' if row.target is not None else ""
                note = f'  <span class="note"{target}>{e(row.note)}</span>'
            padding = " " * max(1, 21 - len(row.hex))
            info = f"{title}: {row.text} {row.note}".strip()
            if row.holes:
                info += " | " + "; ".join(f"hole {h.value} <- {h.written} = {h.meaning}"
                                          for h in row.holes)
            yield _row(f'<span class="dim">{row.offset:04x}</span>  {_hex(row)}{padding}'
                       f'{e(row.text)}{note}', ins=ins, uop=number, info=info,
                       ident=f"{prefix}m{row.offset}")


def _column(title: str, rows: Iterator[str]) -> str:
    return f'<section><h2>{e(title)}</h2><div class="body">{"".join(rows)}</div></section>'


def _status(subject: dump.Subject) -> str:
    if subject.fallback_reason:
        return f"runs in the interpreter: {subject.fallback_reason}"
    if subject.emitted is not None:
        return (f"{subject.emitted.size} bytes of machine code at "
                f"{subject.emitted.code.address:#x}")
    return "not compiled"


def _main(subject: dump.Subject, index: int) -> str:
    """The four columns of one code object (the function: index 0; its
    comprehensions after it, hidden until their tab is picked)."""
    instructions = _instructions(subject)
    prefix = f"s{index}-"
    columns = [
        _column(f"Source ({os.path.basename(subject.code.co_filename)})",
                _source(subject, instructions)),
        _column("Bytecode (and what tier 1 specialized)", _bytecode(subject, instructions)),
        _column("Uops (after all passes)", _uops(subject, subject.uop_numbers())),
        _column("Machine code (offsets from the code start; holes underlined)",
                _machine_code(subject, prefix)),
    ]
    hidden = " hidden" if index else ""
    return f'<main id="main{index}" data-prefix="{prefix}"{hidden}>{"".join(columns)}</main>'


def page(subject: dump.Subject) -> str:
    """The explainer page of `subject` (and of its comprehensions), as HTML text."""
    subjects = [subject, *subject.nested]
    text = dump.render(subject)
    tabs = ""
    if subject.nested:
        # (A comprehension's tab: its name inside the function, e.g. <listcomp>.<listcomp>.)
        labels = [subject.name] + [each.name.removeprefix(subject.name + ".")
                                   for each in subject.nested]
        buttons = "".join(
            f'<button data-main="main{k}" title="{e(each.name)}: {e(_status(each))}"'
            f'{" class=on" if k == 0 else ""}>{e(label)}</button>'
            for k, (each, label) in enumerate(zip(subjects, labels)))
        tabs = f"<nav>{buttons}</nav>"
    comprehensions = ("  Its comprehensions, compiled with it, are a tab away."
                      if subject.nested else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cpjit: {e(subject.name)}</title>
<style>{_STYLE}</style></head>
<body>
<header><h1>cpjit: how {e(subject.name)} became machine code</h1>
<p>{e(_status(subject))}.  Hover a line to see what it became (and came from) in the other
columns; click to keep it.  In the machine code, each uop's stencil is a block; underlined
bytes are holes the JIT patched: hover one to see its value.{comprehensions}</p>
<details><summary>The full text dump (python -m cpjit dump)</summary><pre>{e(text)}</pre></details>
</header>
{tabs}
{"".join(_main(each, k) for k, each in enumerate(subjects))}
<div id="info">Hover a line or a hole.</div>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_page(spec: str, *, call: str | None = None, output: str = "cpjit-explain.html") -> Path:
    """Compile FILE.py:FUNC (calling it with `call` first, as for the dump) and write its page."""
    path = Path(output)
    path.write_text(page(dump.subject_of_target(spec, call)), encoding="utf-8")
    return path
