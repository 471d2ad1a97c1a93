"""Entry point of the ``bbam-captum`` console script: one sub-command per module."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import InputError
from . import evaluate_cmd, explain_cmd, generate_cmd, labels_cmd, report_cmd, self_label_cmd, synth_cmd

# Each sub-command module offers ``add_parser(subparsers)`` and ``run(args) -> int``. Building the parsers and
# checking the input import no torch or OpenMMLab (seconds): ``run`` imports those after its checks.
_COMMANDS = (synth_cmd, explain_cmd, generate_cmd, labels_cmd, self_label_cmd, evaluate_cmd, report_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bbam-captum",
        description="BBAM attribution maps and pseudo masks for MMDetection two-stage detectors.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        module.add_parser(subparsers).set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as err:  # only input the user must fix: a bug keeps its traceback
        print(f"bbam-captum {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
