"""The ``diverseg`` command: parses arguments and calls the public API; no logic lives here.

Each subcommand is a module of this package with ``register(subparsers)``, which adds its parser
and sets ``func(args) -> int`` as the default.

Example:
    >>> main(["--version"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import DiversegError, ParameterError, disk_problem, redact
from ..processes import Terminated, signals_as_interrupts
from ..version import __version__

#: Subcommand modules, in the order ``diverseg --help`` lists them.
COMMANDS = [
    "blockiness", "quality", "calibrate", "score", "select", "publish", "curate", "build", "push", "export", "sr-eval"
]


#: ``diverseg --help`` ends with this: the main job on the built-in sample corpus.
START_HERE = """start here:
  diverseg sample demo        # 12 rendered pristine PNGs + JPEG copies of 4 of them (q95, q75, q50)
  diverseg curate demo --out mysubset --name mine --scorers blockiness --max-blockiness 10 \\
      --format parquet,webdataset
  # keeps the PNGs, drops the JPEGs; then datasets.load_dataset("mysubset", "mine").
  # Your own images: replace 'demo' with a folder, Parquet/tar shards or a Hub dataset id.
  # Every command has --help with examples."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the help to read, not the whole usage (exit 2).

    Its subparsers are of the same class (argparse makes them so).

    Example:
        >>> OneLineParser(prog="diverseg score").error("argument --workers: invalid int value: 'x'")  # doctest: +SKIP
        diverseg score: error: argument --workers: invalid int value: 'x'; see `diverseg score --help`
    """

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="diverseg",
        description="Build DiverSeg-style super-resolution training sets: score, select, publish.",
        epilog=START_HERE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"diverseg-hf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in ("sample", *COMMANDS):  # sample first: it makes the corpus the start-here example runs on
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").register(sub)
    return parser


#: Parameters whose flag is not the parameter's name with dashes.
_FLAGS = {"formats": "format", "address": "ray-address", "out_dir": "out"}


def as_flags(exc: DiversegError) -> str:
    """The message of ``exc`` in command-line terms: a :class:`ParameterError` names the flag.

    Example:
        >>> as_flags(ParameterError("rows_per_block", "must be at least 1, got 0"))
        '--rows-per-block must be at least 1, got 0'
        >>> as_flags(ParameterError("formats", "must be parquet or webdataset"))
        '--format must be parquet or webdataset'
    """
    if isinstance(exc, ParameterError):
        flag = _FLAGS.get(exc.param, exc.param.replace("_", "-"))
        return f"--{flag} {exc.problem}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with signals_as_interrupts():  # SIGTERM/SIGHUP unwind the run as Ctrl-C does (workers ended too)
            return int(args.func(args) or 0)
    except DiversegError as exc:
        print(f"diverseg {args.command}: error: {redact(as_flags(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = f"terminated ({exc})" if isinstance(exc, Terminated) else "interrupted"
        print(f"diverseg {args.command}: {what}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, Terminated) else 130
    except Exception as exc:  # a full, read-only or forbidden disk: one line (exit 1); anything else is a bug
        problem = disk_problem(exc)
        if problem is None:
            raise
        print(f"diverseg {args.command}: error: {redact(problem)}", file=sys.stderr)
        return 1
