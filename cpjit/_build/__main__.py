"""python -m cpjit._build [--force]: (re)write the stencil table of the source tree."""

import argparse
from pathlib import Path

from . import build


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m cpjit._build", description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="project root (default: this source tree)")
    args = parser.parse_args()
    build(args.root, force=args.force)


if __name__ == "__main__":
    main()
