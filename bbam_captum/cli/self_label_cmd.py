"""``bbam-captum self-label --run OUT --config CFG --checkpoint CKPT --out OUT2``: one round of
self-training, the masks of a Mask R-CNN trained on OUT's labels as the next labels."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import check_device, print_summary


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "self-label", help="the next labels from a Mask R-CNN trained on a run's labels (self-training)",
        description="Writes OUT2 (maps, mmseg, coco, run.json, summary.json) from the masks that the trained Mask "
                    "R-CNN gives for every box of the generate run in --run; train on OUT2 as on OUT. Labels again "
                    "with other rules: bbam-captum labels --out OUT2.")
    parser.add_argument("--run", required=True, dest="run_dir", metavar="OUT",
                        help="the output folder of the generate run the model learnt from")
    parser.add_argument("--config", required=True,
                        help="the trained model's config (e.g. work_dirs/config/config.py after mim train)")
    parser.add_argument("--checkpoint", required=True, help="its checkpoint (e.g. work_dirs/config/iter_600.pth)")
    parser.add_argument("--out", required=True, help="output folder of the new labels (not --run)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError

    for flag in ("config", "checkpoint"):
        if not Path(getattr(args, flag)).is_file():
            raise InputError(f"--{flag} {getattr(args, flag)}: no such file")
    if not (Path(args.run_dir) / "run.json").is_file():
        raise InputError(f"--run {args.run_dir}: no run.json there; is it the output folder of a generate run?")
    check_device(args.device)
    from ..detectors.base import UnsupportedDetectorError
    from ..detectors.loading import load_detector
    from ..pipeline.self_training import self_training_labels

    model = load_detector(args.config, args.checkpoint, device=args.device)
    try:
        summary = self_training_labels(args.run_dir, model, args.out, show_progress=True)
    except UnsupportedDetectorError as err:
        raise InputError(f"--config {args.config}: {err}") from None
    print_summary(summary, Path(args.out))
    return 1 if summary["failures"] else 0
