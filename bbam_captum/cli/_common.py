"""Arguments shared by several sub-commands."""
from __future__ import annotations

import argparse
import inspect


def add_detector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="MMDetection config (default: the bundled detector)")
    parser.add_argument("--checkpoint", default=None, help="its checkpoint (default: the bundled one)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def bbam_default(name: str):
    """The default of one of :meth:`bbam_captum.BBAM.attribute`'s settings (one source of truth)."""
    from ..attr.bbam import BBAM

    return inspect.signature(BBAM.attribute).parameters[name].default
