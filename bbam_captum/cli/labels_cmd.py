"""``bbam-captum labels --out OUT``: remake pseudo labels from saved maps with other thresholds."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .generate_cmd import RUN_FILE, _report, add_label_args, label_settings


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "labels", help="remake pseudo labels from the maps of a generate run (no BBAM run)",
        description="Rewrites OUT/mmseg, OUT/coco and OUT/summary.json from OUT/maps with new thresholds.")
    parser.add_argument("--out", required=True, help="the output folder of a generate run")
    add_label_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..pipeline import read_coco, write_labels

    out = Path(args.out)
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise FileNotFoundError(f"{run_file} not found: is {out} the output of 'bbam-captum generate'?")
    info = json.loads(run_file.read_text())
    class_names = tuple(info["class_names"])
    coco = read_coco(info["ann"], class_names)
    summary = write_labels(out, coco, Path(info["img_dir"]), label_settings(args), class_names, info["bbam_settings"])
    _report(summary, out)
    return 1 if summary["failures"] else 0
