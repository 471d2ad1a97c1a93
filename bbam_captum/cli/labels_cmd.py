"""``bbam-captum labels --out OUT``: remake pseudo labels from saved maps with other thresholds."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_label_args, label_settings, print_summary


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "labels", help="remake pseudo labels from the maps of a generate run (no BBAM run)",
        description="Rewrites OUT/mmseg, OUT/coco and OUT/summary.json from OUT/maps with new thresholds.")
    parser.add_argument("--out", required=True, help="the output folder of a generate run")
    add_label_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..pipeline.relabelling import relabel

    summary = relabel(args.out, label_settings(args), label_workers=args.label_workers, show_progress=True)
    print_summary(summary, Path(args.out))
    return 1 if summary["failures"] else 0
