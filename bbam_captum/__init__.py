"""bbam-captum: BBAM as a Captum attribution method for two-stage detectors (MMDetection, torchvision).

Importing the package changes nothing global (torch's unpickling allow-list, matplotlib's
backend, OpenMMLab's registries), and imports neither torch nor OpenMMLab: the names below load
on first use, so that the command line answers ``--help`` and input errors at once. OpenMMLab
configs name :mod:`bbam_captum.mmlab` in ``custom_imports`` to get what a training run needs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .attr import BBAM, BBAMSettings, BoxGradCAM, BoxRecord
    from .detectors import DetectorAdapter, MMDetTwoStageAdapter, TorchvisionRCNNAdapter, load_detector

__version__ = "0.1.0"
__all__ = ["BBAM", "BBAMSettings", "BoxGradCAM", "BoxRecord", "DetectorAdapter", "MMDetTwoStageAdapter",
           "TorchvisionRCNNAdapter", "load_detector"]
__getattr__ = lazy_attributes(__name__, {
    ".attr": ("BBAM", "BBAMSettings", "BoxGradCAM", "BoxRecord"),
    ".detectors": ("DetectorAdapter", "MMDetTwoStageAdapter", "TorchvisionRCNNAdapter", "load_detector"),
})
