"""The one place that picks what depends on the CPython version (its C twin: csrc/pyversion.h)."""

import sys

if sys.version_info[:2] == (3, 11):
    from . import py311 as current
    UNSUPPORTED = None
else:
    current = None
    UNSUPPORTED = (f"CPython {sys.version_info[0]}.{sys.version_info[1]} is not supported yet "
                   "(cpjit compiles for 3.11)")
