"""The benchmark kernels (kernels/*.py) and how to load a plain or a jitted copy of one.

Each kernel module names its main function in MAIN and its arguments in ARGS.
Every load executes the module afresh, so the plain copy and the jitted copy share
no function, class or code object.
"""

import importlib.util
from pathlib import Path

import cpjit

KERNELS = Path(__file__).resolve().parent / "kernels"
NAMES = tuple(sorted(path.stem for path in KERNELS.glob("*.py")))
VARIANTS = ("plain", "jit")


def select(names):
    """`names` (all kernels when empty), checked against the kernels there are."""
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        raise ValueError(f"no kernel named {', '.join(unknown)} (there are: {', '.join(NAMES)})")
    return list(names) or list(NAMES)


def _load_copy(name, variant):
    spec = importlib.util.spec_from_file_location(f"{name}_{variant}", KERNELS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_plain(name):
    return _load_copy(name, "plain")


def load_jitted(name):
    """A copy whose functions and methods are all wrapped by cpjit.jit_module();
    returns (module, the wrappers)."""
    module = _load_copy(name, "jit")
    return module, cpjit.jit_module(module)


def load(name, variant):
    return load_plain(name) if variant == "plain" else load_jitted(name)[0]


def main_function(module):
    return getattr(module, module.MAIN)


def run(module):
    """One call of the kernel: its main function on its arguments."""
    return main_function(module)(*module.ARGS)
