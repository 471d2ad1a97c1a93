"""Arguments shared by several sub-commands."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..attr.settings import BBAMSettings

# the argparse destination of each field of BBAMSettings that the command line sets
_DESTS = {"steps": "steps", "l1_coef": "l1_coef", "early_stop_patience": "early_stop", "context": "context",
          "seed": "seed"}


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
    if args.device == "cpu":  # the default: no torch needed to know it, so input errors answer at once
        return
    import torch

    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"--device {args.device!r} is not a torch device (e.g. cpu, cuda, cuda:1): {err}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {args.device}: no CUDA GPU is available here (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {args.device}: only {torch.cuda.device_count()} GPU(s) here")
    elif device.type != "cpu":
        raise InputError(f"--device {args.device}: expected cpu or cuda[:N]")


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
