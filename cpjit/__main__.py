"""python -m cpjit: stencils | demo | dump FILE.py:FUNC | explain FILE.py:FUNC."""

from __future__ import annotations

import argparse
import sys


def _stencils(args) -> int:
    from . import stencil_table
    from ._stencils import split_variant
    stencils = stencil_table.stencils()
    uops = stencil_table.uops()
    print(f"{len(stencils)} stencils, built with clang {stencil_table.clang_version()} "
          f"(table digest {stencil_table.digest()[:12]})")
    for name in sorted(stencils):
        stencil = stencils[name]
        spec = uops.get(split_variant(name)[0])  # a variant's: its uop's
        size = f"{len(stencil.code)} bytes"
        if stencil.trailing_jump:
            size += f" ({stencil.body_size} when followed by the next uop)"
        if stencil.data:
            size += f", {len(stencil.data)} bytes of data"
        print(f"\n{name}: {size}")
        if spec is not None:
            effect = f"({', '.join(spec.inputs)} -- {', '.join(spec.outputs)})"
            flags = ", ".join(f for f in sorted(spec.flags) if not f.startswith("USES_"))
            print(f"    {effect}  {flags}".rstrip())
            if args.verbose and spec.doc:
                print(f"    {spec.doc}")
        for hole in stencil.holes + stencil.data_holes:
            what = f"{hole.value.value} {hole.symbol}" if hole.symbol else hole.value.value
            where = "data" if hole in stencil.data_holes else "code"
            print(f"    hole {where}+{hole.offset:#06x}  {what:<34} {hole.reloc.value:<9} "
                  f"addend {hole.addend}")
    return 0


def _demo(args) -> int:
    from . import demo
    return demo.main(quick=args.quick)


def _dump(args) -> int:
    from . import dump
    print(dump.dump_file_function(args.target, call=args.call, absolute=args.absolute), end="")
    return 0


def _explain(args) -> int:
    from . import explain
    path = explain.write_page(args.target, call=args.call, output=args.output)
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpjit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stencils = commands.add_parser("stencils", help="list every stencil with its size and holes")
    stencils.add_argument("-v", "--verbose", action="store_true", help="also print uop docs")
    stencils.set_defaults(run=_stencils)
    demo = commands.add_parser("demo", help="jit a few functions, show speedups and a dump")
    demo.add_argument("--quick", action="store_true", help="smaller inputs")
    demo.set_defaults(run=_demo)
    dump = commands.add_parser("dump", help="compile FILE.py:FUNC and print its dump")
    dump.add_argument("target", help="path/to/file.py:function (or Class.method)")
    dump.add_argument("--call", metavar="EXPR",
                      help="arguments for the warm-up call, e.g. --call '10, 2.5'")
    dump.add_argument("--absolute", action="store_true", help="show absolute addresses")
    dump.set_defaults(run=_dump)
    explain = commands.add_parser("explain", help="write an HTML explainer page for FILE.py:FUNC")
    explain.add_argument("target")
    explain.add_argument("--call", metavar="EXPR")
    explain.add_argument("-o", "--output", default="cpjit-explain.html")
    explain.set_defaults(run=_explain)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # `python -m cpjit stencils | head`
        sys.stderr.close()
        return 0
    except (OSError, ValueError, LookupError, TypeError, SyntaxError) as error:
        if args.command not in ("dump", "explain"):
            raise
        print(f"cpjit: {error}", file=sys.stderr)  # a bad FILE.py:FUNC or --call
        return 2


if __name__ == "__main__":
    sys.exit(main())
