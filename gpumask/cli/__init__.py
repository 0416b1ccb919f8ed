"""The ``gpumask`` command (console script and ``python -m gpumask``).

Each sub-command lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``; this module only dispatches.  Errors a user can fix (bad
configs, missing files, existing outputs) print one ``gpumask: error:`` block and
exit with status 2; a batch with failed fields exits with status 1.  What only
the command line uses lives here too: the demo's field and figure (``_demo``,
``data/``).

May import: every layer (it is the top one).  Sub-commands import what they run
inside ``run`` (the batch layer and its YAML/dask dependencies load only for the
sub-commands that need them).
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

# sub-command -> module (imported lazily so ``gpumask --help`` stays fast)
COMMANDS = {
    "info": "gpumask.cli.info",
    "demo": "gpumask.cli.demo",
    "mask": "gpumask.cli.mask",
    "kbe": "gpumask.cli.kbe",
    "batch": "gpumask.cli.batch",
    "examples": "gpumask.cli.examples",
    "reflected": "gpumask.cli.reflected",
    "explain": "gpumask.cli.explain",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpumask",
        description="Exclusion masks for gamma-ray background estimation, on the GPU.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "demo"
    if args.command is None:
        args = parser.parse_args(["demo", *(argv if argv is not None else sys.argv[1:])])
    return importlib.import_module(COMMANDS[command]).run(args)
