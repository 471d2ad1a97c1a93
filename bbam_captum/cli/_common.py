"""Arguments shared by several sub-commands."""
from __future__ import annotations

import argparse
import inspect
import math
from pathlib import Path


def add_detector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="MMDetection config (default: the bundled detector)")
    parser.add_argument("--checkpoint", default=None, help="its checkpoint (default: the bundled one)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def bbam_default(name: str):
    """The default of one of :meth:`bbam_captum.BBAM.attribute`'s settings (one source of truth)."""
    from ..attr.bbam import BBAM

    return inspect.signature(BBAM.attribute).parameters[name].default


def check_detector_args(args: argparse.Namespace) -> None:
    """``--config``, ``--checkpoint`` and ``--device`` are usable, checked before the detector loads.

    Raises:
        InputError: a missing file, or a device that torch does not know or this machine lacks.
    """
    import torch

    from ..errors import InputError

    for flag, path in (("--config", args.config), ("--checkpoint", args.checkpoint)):
        if path is not None and not Path(path).is_file():
            raise InputError(f"{flag} {path}: no such file")
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


def check_bbam_args(args: argparse.Namespace) -> None:
    """The BBAM settings of the command line, checked before anything loads or is written.

    Raises:
        InputError: naming the option, what it must be and what came.
    """
    from ..errors import InputError

    if args.steps < 1:
        raise InputError(f"--steps must be at least 1, got {args.steps}")
    if not (math.isfinite(args.l1_coef) and args.l1_coef >= 0):
        raise InputError(f"--l1-coef must be a finite number >= 0, got {args.l1_coef}")
    if getattr(args, "early_stop", None) is not None and args.early_stop < 1:
        raise InputError(f"--early-stop must be at least 1, got {args.early_stop}")
    if not math.isfinite(getattr(args, "context", 0.0)):
        raise InputError(f"--context must be a finite number, got {args.context}")
