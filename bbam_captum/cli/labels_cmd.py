"""``bbam-captum labels --out OUT``: remake pseudo labels from saved maps with other thresholds."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .generate_cmd import _report, add_label_args, label_settings


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "labels", help="remake pseudo labels from the maps of a generate run (no BBAM run)",
        description="Rewrites OUT/mmseg, OUT/coco and OUT/summary.json from OUT/maps with new thresholds.")
    parser.add_argument("--out", required=True, help="the output folder of a generate run")
    add_label_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..attr import BBAMSettings
    from ..errors import InputError
    from ..pipeline.outputs import RUN_FILE, check_output_folder

    settings = label_settings(args)
    out = Path(args.out)
    check_output_folder(out)
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise InputError(f"{run_file} not found: is {out} the output of 'bbam-captum generate'?")
    try:
        info = json.loads(run_file.read_text())
        class_names = tuple(info["class_names"])
        ann, img_dir = info["ann"], Path(info["img_dir"])
        bbam_settings = BBAMSettings(**info["bbam_settings"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise InputError(f"{run_file} is damaged ({err!r}): rerun 'bbam-captum generate'") from err
    from ..pipeline import read_coco, write_labels  # after the checks: an input error answers before torch loads
    from ..pipeline.generate import run_fingerprint

    coco = read_coco(ann, class_names, by_order=bool(info.get("categories_by_order", False)))
    # maps of a run that stored no detector hash are checked by their annotation ids only
    fingerprint = run_fingerprint(bbam_settings, info["detector_digest"]) if "detector_digest" in info else None
    summary = write_labels(out, coco, img_dir, settings, class_names, bbam_settings, fingerprint=fingerprint,
                           workers=args.label_workers, show_progress=True)
    _report(summary, out)
    return 1 if summary["failures"] else 0
