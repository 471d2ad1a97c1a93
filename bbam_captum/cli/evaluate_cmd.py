"""``bbam-captum evaluate --pred OUT --gt ANN.json``: pseudo labels against true masks."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="score pseudo labels against true masks",
        description="Scores OUT (a generate run) against the masks in --gt; prints a table and writes "
                    "OUT/eval.json.")
    parser.add_argument("--pred", required=True, help="output folder of 'bbam-captum generate'")
    parser.add_argument("--gt", required=True, help="COCO file with the true instance masks")
    parser.add_argument("--gt-img-dir", default=None,
                        help="folder of --gt's images, compared by content with those the labels were made from "
                             "(default: images/ beside --gt if there is one, else --gt's folder)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..io.layout import RunLayout

    pred = Path(args.pred)
    layout = RunLayout(pred)
    if not layout.coco_instances.is_file():
        raise InputError(f"not found: {layout.coco_instances} (is --pred the output folder of 'bbam-captum generate'?)")
    if not Path(args.gt).is_file():
        raise InputError(f"not found: {args.gt}")
    gt_img_dir = None if args.gt_img_dir is None else Path(args.gt_img_dir)
    if gt_img_dir is not None and not gt_img_dir.is_dir():
        raise InputError(f"--gt-img-dir {gt_img_dir}: no such folder")
    from ..metrics.pseudo_labels import evaluate_pseudo_labels, gt_image_folder  # after the checks (torch)
    from ..pipeline.generate import recorded_image_digests
    from ..utils.atomic import write_json_atomic

    scores = evaluate_pseudo_labels(pred, args.gt, recorded_image_digests(pred), gt_img_dir)
    if scores["images_unchecked"]:
        print(f"note: {scores['images_unchecked']} image(s) of {args.gt} could not be compared by content with "
              f"those the labels were made from (no file under {gt_image_folder(Path(args.gt), gt_img_dir)}, or no "
              "record in the maps); pass --gt-img-dir to check them", file=sys.stderr)
    write_json_atomic(layout.eval_file, scores, indent=1)
    print(f"{'metric':<28}{'value':>8}")
    for key in ("objects", "instance_miou", "semantic_miou", "semantic_miou_labelled", "ignored_fraction"):
        value = scores[key]
        print(f"{key:<28}{value:>8.3f}" if isinstance(value, float) else f"{key:<28}{value:>8}")
    for name, iou in scores["semantic_iou_per_class"].items():
        print(f"  IoU {name:<22}{iou:>8.3f}")
    print(f"wrote {layout.eval_file}")
    return 0
