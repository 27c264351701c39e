"""Build cpjit: the C runtime extension and the stencil table.

`build_py` first runs `build_stencils`, which compiles every uop in
stencils/ with clang >= 19 and writes cpjit/_generated/stencils_<tag>.py
(only when one of its inputs changed; see cpjit/_build).
"""

import sys
import sysconfig
import types
from pathlib import Path

from setuptools import Command, Extension, setup
from setuptools.command.build_py import build_py as _build_py

ROOT = Path(__file__).resolve().parent


class build_stencils(Command):
    """Compile the stencils and write the stencil table into the source tree."""

    description = "compile stencils with clang and write cpjit/_generated/stencils_<tag>.py"
    user_options = [("force", "f", "rebuild even if up to date")]

    def initialize_options(self):
        self.force = False

    def finalize_options(self):
        pass

    def run(self):
        # Import cpjit._build from this source tree without running
        # cpjit/__init__.py, which needs the extension being built.
        package = types.ModuleType("cpjit")
        package.__path__ = [str(ROOT / "cpjit")]
        saved = sys.modules.get("cpjit")
        sys.modules["cpjit"] = package
        try:
            from cpjit._build import build
            build(ROOT, force=bool(self.force))
        finally:
            for name in [n for n in sys.modules if n == "cpjit" or n.startswith("cpjit.")]:
                del sys.modules[name]
            if saved is not None:
                sys.modules["cpjit"] = saved


class build_py(_build_py):
    def run(self):
        self.run_command("build_stencils")
        super().run()


include = sysconfig.get_paths()["include"]
runtime = Extension(
    "cpjit._runtime",
    sources=sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.c")),
    depends=sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.h")),
    include_dirs=["csrc", include, str(Path(include) / "internal")],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wno-unused-function"],
)

setup(
    ext_modules=[runtime],
    cmdclass={"build_stencils": build_stencils, "build_py": build_py},
    package_data={"cpjit._generated": ["stencils_*.py"]},
)
