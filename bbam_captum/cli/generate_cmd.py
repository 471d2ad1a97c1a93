"""``bbam-captum generate``: pseudo labels (maps, mmseg, COCO) for every box of a COCO file."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import (add_detector_args, add_label_args, add_window_padding_arg, bbam_default, bbam_settings,
                      check_detector_args, label_settings, load_cli_detector, print_summary)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate", help="BBAM pseudo labels for every box of a COCO file",
        description="Reads boxes and classes from --ann (segmentations are ignored), runs BBAM on every "
                    "image and writes OUT/maps/ (raw maps), OUT/mmseg/ and OUT/coco/ (labels with ready "
                    "configs for mim train) and OUT/summary.json. Rerunning resumes; exit code 1 when any "
                    "image or box failed.")
    parser.add_argument("--ann", required=True, help="COCO instance file with boxes")
    parser.add_argument("--img-dir", required=True, help="folder of the images named in --ann")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--steps", type=int, default=bbam_default("steps"),
                        help=f"BBAM optimisation steps (default: {bbam_default('steps')})")
    parser.add_argument("--l1-coef", type=float, default=bbam_default("l1_coef"),
                        help=f"BBAM's lambda (default: {bbam_default('l1_coef')})")
    parser.add_argument("--context", type=float, default=bbam_default("context"),
                        help="the window the detector sees around each box, as a fraction of the box side "
                             f"(default: {bbam_default('context')}); a negative value: the whole image")
    parser.add_argument("--early-stop", type=int, default=None, metavar="PATIENCE",
                        help="stop a box after PATIENCE steps without improvement (default: off)")
    add_window_padding_arg(parser)
    parser.add_argument("--seed", type=int, default=bbam_default("seed"))
    parser.add_argument("--categories-by-order", action="store_true",
                        help="where the COCO category names are not the detector's class names, pair the categories "
                             "(by id) with the classes by order (the counts must agree); without it such a file is "
                             "refused")
    parser.add_argument("--force", action="store_true",
                        help="recompute every image's maps (by default a rerun recomputes only images whose "
                             "boxes, file or BBAM settings changed)")
    parser.add_argument("--batch-images", type=int, default=1, metavar="N",
                        help="images whose boxes BBAM optimises together: the same maps, fewer and fuller forwards "
                             "where windows share sizes (with --window-padding); for a GPU (default: 1)")
    parser.add_argument("--launcher", choices=["none", "pytorch"], default="none",
                        help="'pytorch' under torchrun: each rank takes a share of the images")
    add_label_args(parser)
    add_detector_args(parser)
    return parser


def check_inputs(args: argparse.Namespace) -> None:
    """Everything about the input that can be checked before the detector loads.

    Raises:
        InputError: bad settings, detector files or device, image folder, output folder,
            a malformed COCO file, or an input that lies where the run writes.
    """
    from ..errors import InputError
    from ..pipeline.outputs import check_generate_inputs

    label_settings(args)
    bbam_settings(args)
    if args.batch_images < 1:
        raise InputError(f"--batch-images must be >= 1, got {args.batch_images}")
    check_detector_args(args)
    check_generate_inputs(args.ann, args.img_dir, args.out)


def run(args: argparse.Namespace) -> int:
    check_inputs(args)
    from ..pipeline.api import generate_labels  # after the checks: an input error answers before torch loads
    from ..pipeline.coco_input import CategoryMismatchError

    if args.launcher != "none":
        _init_distributed(args.launcher, args.device)
    model = load_cli_detector(args)
    try:
        summary = generate_labels(model, args.ann, args.img_dir, args.out, label_settings(args), force=args.force,
                                  categories_by_order=args.categories_by_order, label_workers=args.label_workers,
                                  run_info={"config": args.config, "checkpoint": args.checkpoint,
                                            "torchvision": args.torchvision, "classes": args.classes},
                                  settings=bbam_settings(args), batch_images=args.batch_images)
    except CategoryMismatchError as err:
        raise err.asking_for("--categories-by-order") from None
    if summary is None:  # not rank 0
        return 0
    print_summary(summary, Path(args.out))
    return 1 if summary["failures"] else 0


def _init_distributed(launcher: str, device: str) -> None:
    """Joins the process group that torchrun describes in the environment.

    mmengine's launcher always selects a CUDA device, so a CPU run joins with gloo
    directly; ``torch.distributed``'s rank and barrier work on either group.
    """
    if device == "cpu":
        import torch.distributed as dist

        dist.init_process_group(backend="gloo")
    else:
        from mmengine.dist import init_dist

        init_dist(launcher, backend="nccl")
