"""cpjit: a copy-and-patch JIT compiler for CPython.

    import cpjit

    @cpjit.jit
    def f(n): ...

See README.md.  CPJIT_DISABLE=1 turns the JIT off (wrappers call the
original functions); CPJIT_DUMP=1 (or a directory) dumps every compilation.
"""

from ._api import DEFAULT_WARMUP, JitError, jit
from ._modules import install, jit_module, uninstall

__all__ = ["jit", "jit_module", "install", "uninstall", "JitError", "DEFAULT_WARMUP"]
__version__ = "0.1.0"
