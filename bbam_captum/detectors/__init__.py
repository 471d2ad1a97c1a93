"""Detector adapters (what BBAM sees of a detector: MMDetection and torchvision two-stage detectors)
and loading of the bundled detector."""
from .base import DetectorAdapter, Detections, RoIOutputs, UnsupportedDetectorError
from .loading import bundled_detector_files, load_detector
from .mmdet_two_stage import MMDetTwoStageAdapter
from .torchvision_rcnn import TorchvisionRCNNAdapter

__all__ = ["DetectorAdapter", "Detections", "MMDetTwoStageAdapter", "RoIOutputs", "TorchvisionRCNNAdapter",
           "UnsupportedDetectorError", "bundled_detector_files", "load_detector"]
