"""Optimization passes over a trace (uops -> better uops).

Each pass takes the trace, changes it in place and returns a list of
one-line descriptions of what it changed (empty: nothing), which the dump
shows under the pass's name.
"""

from __future__ import annotations

from .ir import LABEL, Trace


def merge_tracing_checks(trace: Trace) -> list[str]:
    """Drop a _CHECK_TRACING that directly follows another one (no code in
    between can turn tracing on)."""
    changes = []
    kept = []
    for uop in trace.uops:
        if (uop.name == "_CHECK_TRACING" and kept and kept[-1].name == "_CHECK_TRACING"):
            changes.append(f"removed duplicate _CHECK_TRACING @{2 * uop.offset}")
            continue
        kept.append(uop)
    trace.uops[:] = kept
    return changes


PASSES = [
    ("merge_tracing_checks", merge_tracing_checks),
]
