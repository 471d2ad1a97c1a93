"""``bbam-captum generate``: pseudo labels (maps, mmseg, COCO) for every box of a COCO file."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..labels.settings import LabelSettings
from ._common import add_detector_args, bbam_default, bbam_settings, check_detector_args, load_cli_detector


def add_label_args(parser: argparse.ArgumentParser) -> None:
    d = LabelSettings()
    parser.add_argument("--theta-fg", type=float, default=d.theta_fg,
                        help=f"semantic foreground above this map value (default: {d.theta_fg})")
    parser.add_argument("--theta-bg", type=float, default=d.theta_bg,
                        help=f"background below it; between the two is ignored (default: {d.theta_bg})")
    parser.add_argument("--instance-thr", type=float, default=d.instance_threshold,
                        help=f"instance mask above this map value (default: {d.instance_threshold})")
    parser.add_argument("--blur", type=float, default=d.blur_sigma,
                        help=f"Gaussian blur of the maps before thresholding, sigma in px (default: {d.blur_sigma})")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=d.refine,
                        help=f"refine masks with mask proposals (Eq. 4 of the paper; default: {d.refine})")
    parser.add_argument("--crf", action=argparse.BooleanOptionalAction, default=d.crf,
                        help="masks by the original's box-wise dense CRF instead of the thresholds "
                             f"--theta-fg/--theta-bg/--instance-thr/--blur (default: {d.crf}; with --no-crf, "
                             "--refine lifts the thresholded masks most)")
    parser.add_argument("--crf-fg-share", type=float, default=d.crf_fg_share,
                        help="with --crf: share of a box's most-attributed pixels taken as certain foreground "
                             f"(default: {d.crf_fg_share})")
    parser.add_argument("--crf-bg-share", type=float, default=d.crf_bg_share,
                        help=f"with --crf: the same for the outer edge of the ignore band (default: {d.crf_bg_share})")
    parser.add_argument("--label-workers", type=int, default=1, metavar="N",
                        help="processes that make the labels from the maps, one core each; the files are the same "
                             "for any N (default: 1)")
    parser.add_argument("--crf-max-pixels", type=int, default=d.crf_max_pixels,
                        help="with --crf: a larger image is inferred on a grid of about this many pixels, "
                             "its posteriors upsampled guided by its colours; 0: full resolution "
                             f"(default: {d.crf_max_pixels})")


def label_settings(args: argparse.Namespace) -> LabelSettings:
    """The label rules of the command line (and ``--label-workers`` checked)."""
    from ..errors import InputError

    if args.label_workers < 1:
        raise InputError(f"--label-workers must be >= 1, got {args.label_workers}")
    return LabelSettings(theta_fg=args.theta_fg, theta_bg=args.theta_bg, instance_threshold=args.instance_thr,
                         refine=args.refine, blur_sigma=args.blur, crf=args.crf, crf_fg_share=args.crf_fg_share,
                         crf_bg_share=args.crf_bg_share, crf_max_pixels=args.crf_max_pixels)


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
    parser.add_argument("--seed", type=int, default=bbam_default("seed"))
    parser.add_argument("--categories-by-order", action="store_true",
                        help="where the COCO category names are not the detector's class names, pair the categories "
                             "(by id) with the classes by order (the counts must agree); without it such a file is "
                             "refused")
    parser.add_argument("--force", action="store_true",
                        help="recompute every image's maps (by default a rerun recomputes only images whose "
                             "boxes, file or BBAM settings changed)")
    parser.add_argument("--launcher", choices=["none", "pytorch"], default="none",
                        help="'pytorch' under torchrun: each rank takes a share of the images")
    add_label_args(parser)
    add_detector_args(parser)
    return parser


def detector_digest(args: argparse.Namespace) -> str:
    """A hash of the detector's files (config or torchvision builder, weights, class names):
    part of each maps file's key."""
    from ..detectors.loading import bundled_detector_files
    from ..io.images import file_digest

    config, checkpoint = args.config, args.checkpoint
    if args.torchvision is not None:
        classes = "default" if args.classes is None else file_digest(Path(args.classes))
        return f"torchvision:{args.torchvision}:{file_digest(Path(checkpoint))}:{classes}"
    if config is None:
        config, default_checkpoint = bundled_detector_files()
        checkpoint = default_checkpoint if checkpoint is None else checkpoint
    return f"{file_digest(Path(config))}:{'random' if checkpoint is None else file_digest(Path(checkpoint))}"


def check_inputs(args: argparse.Namespace) -> None:
    """Everything about the input that can be checked before the detector loads.

    Raises:
        InputError: bad settings, detector files or device, image folder, output folder,
            a malformed COCO file, or an input that lies where the run writes.
    """
    from ..pipeline.outputs import check_generate_inputs

    label_settings(args)
    bbam_settings(args)
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
                                  categories_by_order=args.categories_by_order, detector_digest=detector_digest(args),
                                  label_workers=args.label_workers,
                                  run_info={"config": args.config, "checkpoint": args.checkpoint,
                                            "torchvision": args.torchvision, "classes": args.classes},
                                  settings=bbam_settings(args))
    except CategoryMismatchError as err:
        raise err.asking_for("--categories-by-order") from None
    if summary is None:  # not rank 0
        return 0
    _report(summary, Path(args.out))
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


def _report(summary: dict, out: Path) -> None:
    print(f"labelled {summary['images_labelled']}/{summary['images']} images, "
          f"{summary['boxes_labelled']}/{summary['boxes']} boxes "
          f"({summary['boxes_without_positive_proposal']} without a positive proposal)")
    for failure in summary["failures"][:10]:
        print(f"  failed: {failure}")
    if len(summary["failures"]) > 10:
        print(f"  ... and {len(summary['failures']) - 10} more (see {out / 'summary.json'})")
    print(f"wrote {out}/maps, {out}/mmseg (config.py), {out}/coco (instances.json, config.py), {out}/summary.json")
