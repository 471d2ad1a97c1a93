"""Arguments shared by several sub-commands."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..attr.settings import BBAMSettings
from ..io.layout import RunLayout
from ..labels.settings import LabelSettings

# the argparse destination of each field of BBAMSettings that the command line sets
_DESTS = {"steps": "steps", "l1_coef": "l1_coef", "early_stop_patience": "early_stop", "context": "context",
          "seed": "seed", "window_padding": "window_padding"}


def add_window_padding_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window-padding", type=float, default=bbam_default("window_padding"), metavar="SHARE",
                        help="boxes whose windows differ in size share a forward when padding adds at most SHARE "
                             "of a window's pixels; 0: windows of one size only, least work (CPU); on a GPU, "
                             f"e.g. 1 (default: {bbam_default('window_padding')})")


def add_detector_args(parser: argparse.ArgumentParser) -> None:
    from ..detectors.loading import TORCHVISION_DETECTORS

    parser.add_argument("--config", default=None, help="MMDetection config (default: the bundled detector)")
    parser.add_argument("--checkpoint", default=None, help="its checkpoint (default: the bundled one)")
    parser.add_argument("--torchvision", default=None, metavar="BUILDER", choices=TORCHVISION_DETECTORS,
                        help="a torchvision detector instead of --config, by its builder "
                             f"({', '.join(TORCHVISION_DETECTORS)}), with its weights from --checkpoint")
    parser.add_argument("--classes", default=None, metavar="FILE",
                        help="with --torchvision: the class names, one a line, in the order of the model's labels "
                             "1..C (default: COCO's for a 91-class checkpoint, else '0'..'C-1', the label minus one)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def bbam_default(name: str):
    """The default of a field of :class:`~bbam_captum.BBAMSettings` (one source of truth)."""
    return getattr(BBAMSettings, name)


def check_detector_args(args: argparse.Namespace) -> None:
    """``--config``, ``--checkpoint`` and ``--device`` are usable, checked before the detector loads.

    Raises:
        InputError: a missing file, or a device that torch does not know or this machine lacks.
    """
    from ..errors import InputError

    if args.torchvision is not None and args.config is not None:
        raise InputError("--torchvision and --config name two detectors; give one")
    if args.torchvision is not None and args.checkpoint is None:
        raise InputError(f"--torchvision {args.torchvision} needs --checkpoint (its weights)")
    if args.classes is not None and args.torchvision is None:
        raise InputError("--classes goes with --torchvision (an MMDetection checkpoint names its classes)")
    for flag, path in (("--config", args.config), ("--checkpoint", args.checkpoint), ("--classes", args.classes)):
        if path is not None and not Path(path).is_file():
            raise InputError(f"{flag} {path}: no such file")
    check_device(args.device)


def check_device(name: str) -> None:
    """``--device`` names a device torch knows and this machine has.

    Raises:
        InputError: a device that torch does not know or this machine lacks.
    """
    from ..errors import InputError

    if name == "cpu":  # the default: no torch needed to know it, so input errors answer at once
        return
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"--device {name!r} is not a torch device (e.g. cpu, cuda, cuda:1): {err}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA GPU is available here (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here")
    elif device.type != "cpu":
        raise InputError(f"--device {name}: expected cpu or cuda[:N]")


def load_cli_detector(args: argparse.Namespace):
    """The detector the command line names: ``--torchvision`` with ``--checkpoint`` (and
    ``--classes``), else ``--config`` and ``--checkpoint`` (default: the bundled one)."""
    from ..detectors.loading import load_detector, load_torchvision_detector
    from ..errors import InputError

    if args.torchvision is None:
        return load_detector(args.config, args.checkpoint, device=args.device)
    classes = None
    if args.classes is not None:
        try:
            text = Path(args.classes).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"--classes {args.classes}: not a readable UTF-8 text file: {err}") from err
        classes = [line.strip() for line in text.splitlines() if line.strip()]
    return load_torchvision_detector(args.torchvision, args.checkpoint, classes, device=args.device)


def bbam_settings(args: argparse.Namespace) -> BBAMSettings:
    """The BBAM settings of the command line (those of its options that the sub-command
    has), checked before anything loads or is written.

    Raises:
        InputError: naming the option, what it must be and what came.
    """
    from ..errors import InputError, SettingsError

    values = {field: getattr(args, dest) for field, dest in _DESTS.items() if hasattr(args, dest)}
    if "context" in values and math.isfinite(values["context"]) and values["context"] < 0:
        values["context"] = None  # a negative --context: the whole image
    try:
        return BBAMSettings(**values)
    except SettingsError as err:  # its message starts with the field's name: say the option instead
        message = str(err)
        field = next((f for f in values if message.startswith(f + " ")), None)
        if field is None:
            raise InputError(message) from err
        raise InputError("--" + _DESTS[field].replace("_", "-") + message[len(field):]) from err


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
    parser.add_argument("--open-holes", action=argparse.BooleanOptionalAction, default=d.open_holes,
                        help="take out of each mask the inner segments whose colours look like its surroundings, "
                             f"not like its rim: the holes of rings and frames (default: {d.open_holes})")
    parser.add_argument("--hole-rim", type=float, default=d.hole_rim,
                        help="with --open-holes: the mask's rim, never cut into, as a share of the box's longer "
                             f"side (default: {d.hole_rim})")
    parser.add_argument("--label-workers", type=int, default=1, metavar="N",
                        help="processes that make the labels from the maps, one core each; the files are the same "
                             "for any N (default: 1)")
    parser.add_argument("--crf-max-pixels", type=int, default=d.crf_max_pixels,
                        help="with --crf: a larger image is inferred on a grid of about this many pixels, "
                             "its posteriors upsampled guided by its colours; 0: full resolution "
                             f"(default: {d.crf_max_pixels})")
    parser.add_argument("--crf-window", type=float, default=d.crf_window,
                        help="with --crf: each box's CRF sees the image within this many widths of the colour "
                             f"kernel (80 px) of the box; 0: the whole image (default: {d.crf_window})")


def label_settings(args: argparse.Namespace) -> LabelSettings:
    """The label rules of the command line (and ``--label-workers`` checked)."""
    from ..errors import InputError

    if args.label_workers < 1:
        raise InputError(f"--label-workers must be >= 1, got {args.label_workers}")
    return LabelSettings(theta_fg=args.theta_fg, theta_bg=args.theta_bg, instance_threshold=args.instance_thr,
                         refine=args.refine, blur_sigma=args.blur, crf=args.crf, crf_fg_share=args.crf_fg_share,
                         crf_bg_share=args.crf_bg_share, crf_max_pixels=args.crf_max_pixels,
                         crf_window=args.crf_window, open_holes=args.open_holes, hole_rim=args.hole_rim)


def add_gt_img_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt-img-dir", default=None,
                        help="folder of --gt's images, compared by content with those the labels were made from "
                             "(default: images/ beside --gt if there is one, else --gt's folder)")


def gt_img_dir(args: argparse.Namespace) -> Path | None:
    """``--gt-img-dir`` as a path, checked; None when not given."""
    from ..errors import InputError

    if args.gt_img_dir is None:
        return None
    folder = Path(args.gt_img_dir)
    if not args.gt_img_dir.strip():  # Path("") is the current folder: almost surely an unset variable
        raise InputError("--gt-img-dir is empty: give the folder of --gt's images")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--gt-img-dir {folder} is a file, not the folder of --gt's images")
    if not folder.is_dir():
        raise InputError(f"--gt-img-dir {folder}: no such folder")
    return folder


def print_unchecked(unchecked: int, gt: Path, folder: Path) -> None:
    """The note that some of ``gt``'s images could not be compared by content."""
    if unchecked:
        print(f"note: {unchecked} image(s) of {gt} could not be compared by content with those the labels were "
              f"made from (no file under {folder}, or no record in the maps); pass --gt-img-dir to check them",
              file=sys.stderr)


def print_summary(summary: dict, out: Path) -> None:
    """What a run labelled and what failed (the first ten), as ``generate`` and ``labels`` print it."""
    layout = RunLayout(out)
    print(f"labelled {summary['images_labelled']}/{summary['images']} images, "
          f"{summary['boxes_labelled']}/{summary['boxes']} boxes "
          f"({summary['boxes_without_positive_proposal']} without a positive proposal)")
    for failure in summary["failures"][:10]:
        print(f"  failed: {failure}")
    if len(summary["failures"]) > 10:
        print(f"  ... and {len(summary['failures']) - 10} more (see {layout.summary_file})")
    print(f"wrote {layout.maps_dir}, {layout.mmseg_dir} (config.py), {layout.coco_dir} (instances.json, config.py), "
          f"{layout.summary_file}")
