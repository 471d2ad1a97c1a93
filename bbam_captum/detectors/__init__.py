"""Detector adapters (what BBAM sees of a detector: MMDetection and torchvision two-stage detectors),
loading them (the bundled one, an MMDetection config, a torchvision builder and checkpoint) and
what identifies one (:func:`detector_digest`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .base import DetectorAdapter, Detections, RoIOutputs, UnsupportedDetectorError
    from .identity import detector_digest
    from .loading import TORCHVISION_DETECTORS, bundled_detector_files, load_detector, load_torchvision_detector
    from .mmdet_two_stage import MMDetTwoStageAdapter
    from .torchvision_rcnn import TorchvisionRCNNAdapter

__all__ = ["TORCHVISION_DETECTORS", "DetectorAdapter", "Detections", "MMDetTwoStageAdapter", "RoIOutputs",
           "TorchvisionRCNNAdapter", "UnsupportedDetectorError", "bundled_detector_files", "detector_digest",
           "load_detector", "load_torchvision_detector"]
# lazy, so that the command line's parser reads TORCHVISION_DETECTORS without torch
__getattr__ = lazy_attributes(__name__, {
    ".base": ("DetectorAdapter", "Detections", "RoIOutputs", "UnsupportedDetectorError"),
    ".identity": ("detector_digest",),
    ".loading": ("TORCHVISION_DETECTORS", "bundled_detector_files", "load_detector", "load_torchvision_detector"),
    ".mmdet_two_stage": ("MMDetTwoStageAdapter",),
    ".torchvision_rcnn": ("TorchvisionRCNNAdapter",),
})
