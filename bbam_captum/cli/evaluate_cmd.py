"""``bbam-captum evaluate --pred OUT --gt ANN.json``: pseudo labels against true masks."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_gt_img_dir_arg, gt_img_dir, print_unchecked


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="score pseudo labels against true masks",
        description="Scores OUT (a generate run) against the masks in --gt; prints a table and writes "
                    "OUT/eval.json.")
    parser.add_argument("--pred", required=True, help="output folder of 'bbam-captum generate'")
    parser.add_argument("--gt", required=True, help="COCO file with the true instance masks")
    add_gt_img_dir_arg(parser)
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
    images = gt_img_dir(args)
    from ..metrics.pseudo_labels import evaluate_pseudo_labels, gt_image_folder  # after the checks (torch)
    from ..pipeline.generate import recorded_image_digests
    from ..utils.atomic import write_json_atomic

    scores = evaluate_pseudo_labels(pred, args.gt, recorded_image_digests(pred), images)
    print_unchecked(scores["images_unchecked"], Path(args.gt), gt_image_folder(Path(args.gt), images))
    write_json_atomic(layout.eval_file, scores, indent=1)
    print(f"{'metric':<28}{'value':>8}")
    for key in ("objects", "instance_miou", "semantic_miou", "semantic_miou_labelled", "ignored_fraction"):
        value = scores[key]
        print(f"{key:<28}{value:>8.3f}" if isinstance(value, float) else f"{key:<28}{value:>8}")
    for name, iou in scores["semantic_iou_per_class"].items():
        print(f"  IoU {name:<22}{iou:>8.3f}")
    print(f"wrote {layout.eval_file}")
    return 0
