"""``bbam-captum evaluate --pred OUT --gt ANN.json``: pseudo labels against true masks."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="score pseudo labels against true masks",
        description="Scores OUT (a generate run) against the masks in --gt; prints a table and writes "
                    "OUT/eval.json.")
    parser.add_argument("--pred", required=True, help="output folder of 'bbam-captum generate'")
    parser.add_argument("--gt", required=True, help="COCO file with the true instance masks")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..metrics.pseudo_labels import evaluate_pseudo_labels
    from ..utils.atomic import write_json_atomic

    pred = Path(args.pred)
    for needed in (pred / "coco" / "instances.json", Path(args.gt)):
        if not needed.is_file():
            raise InputError(f"not found: {needed}" + (" (is --pred the output folder of 'bbam-captum generate'?)"
                                                       if needed.parent.name == "coco" else ""))
    scores = evaluate_pseudo_labels(pred, args.gt)
    write_json_atomic(pred / "eval.json", scores, indent=1)
    print(f"{'metric':<28}{'value':>8}")
    for key in ("objects", "instance_miou", "semantic_miou", "semantic_miou_labelled", "ignored_fraction"):
        value = scores[key]
        print(f"{key:<28}{value:>8.3f}" if isinstance(value, float) else f"{key:<28}{value:>8}")
    for name, iou in scores["semantic_iou_per_class"].items():
        print(f"  IoU {name:<22}{iou:>8.3f}")
    print(f"wrote {pred / 'eval.json'}")
    return 0
