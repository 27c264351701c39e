"""Dump mode: the text of a function's compilation, from bytecode to patched machine code."""

from __future__ import annotations

import os
import sys

from .ir import LABEL


def dump_text(wrapper, **options) -> str:
    record = wrapper._info
    lines = [f"=== cpjit: {wrapper.__qualname__} ==="]
    if wrapper.fallback_reason:
        lines.append(f"runs in the interpreter: {wrapper.fallback_reason}")
    if record is None or getattr(record, "trace", None) is None:
        if not wrapper.fallback_reason:
            lines.append("not compiled yet")
        return "\n".join(lines) + "\n"
    for report in record.reports:
        lines.append(f"--- {report.name} ({report.seconds * 1e6:.0f} us)")
        for change in report.changes:
            lines.append(f"    {change}")
        if report.trace is not None:
            for uop in report.trace.uops:
                if uop.name == LABEL:
                    lines.append(f"  @{2 * uop.oparg}:")
                else:
                    lines.append(f"    {uop.describe()}")
    for note in record.trace.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


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
