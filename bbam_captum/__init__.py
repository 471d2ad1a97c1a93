"""bbam-captum: BBAM as a Captum attribution method for two-stage detectors (MMDetection, torchvision).

Importing the package changes nothing global (torch's unpickling allow-list, matplotlib's
backend, OpenMMLab's registries). OpenMMLab configs name :mod:`bbam_captum.mmlab` in
``custom_imports`` to get what a training run needs.
"""
from .attr import BBAM, BBAMSettings, BoxGradCAM, BoxRecord
from .detectors import DetectorAdapter, MMDetTwoStageAdapter, TorchvisionRCNNAdapter, load_detector

__version__ = "0.1.0"
__all__ = ["BBAM", "BBAMSettings", "BoxGradCAM", "BoxRecord", "DetectorAdapter", "MMDetTwoStageAdapter",
           "TorchvisionRCNNAdapter", "load_detector"]
