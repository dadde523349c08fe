"""`napari-karyo`: the same core generators as the napari widgets, in a terminal. One module per area adds its
subcommands (`karyotype`, `karyogram_import`, `training`, `pathology`)."""

from __future__ import annotations

import argparse
import sys

from napari_karyo import __version__
from napari_karyo.cli import karyogram_import, karyotype, mfish, pathology, training
from napari_karyo.core.errors import KaryoError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-karyo", description="Karyotyping of metaphase spreads and multi-stain pathology jobs."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)
    for area in (karyotype, karyogram_import, mfish, training, pathology):
        area.add_commands(sub)
    _global_flags_after(sub)
    return p


def _global_flags_after(sub: argparse._SubParsersAction) -> None:
    """Accept `-q` after the subcommand too (`napari-karyo analyze x.tif -q`). SUPPRESS keeps a subcommand
    without the flag from resetting the value given before it."""
    for parser in sub.choices.values():
        parser.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars"
        )
        for action in parser._subparsers._group_actions if parser._subparsers else ():
            _global_flags_after(action)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KaryoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write the command's own checks could not foresee (e.g. the disk filled up)
        print(
            f"error: {exc.filename or ''}: {exc.strerror or exc}; free disk space or check permissions",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
