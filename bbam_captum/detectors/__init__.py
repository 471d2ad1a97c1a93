"""Detector adapters (what BBAM sees of a detector) and loading of the bundled detector."""
from .base import DetectorAdapter, Detections, RoIOutputs, UnsupportedDetectorError
from .loading import bundled_detector_files, load_detector
from .mmdet_two_stage import MMDetTwoStageAdapter

__all__ = ["DetectorAdapter", "Detections", "MMDetTwoStageAdapter", "RoIOutputs", "UnsupportedDetectorError",
           "bundled_detector_files", "load_detector"]
