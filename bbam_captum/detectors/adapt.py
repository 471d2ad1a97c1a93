"""From a user's detector to the adapter BBAM and Grad-CAM work through."""
from __future__ import annotations

import torch

from .base import DetectorAdapter

# what an object must offer to be taken as an adapter as it is
ADAPTER_METHODS = ("roi_outputs", "features", "crop", "decode", "pixel_mean", "frozen", "class_names")


def as_adapter(model: torch.nn.Module | DetectorAdapter, method: str = "BBAM") -> DetectorAdapter:
    """The adapter of ``model``: a torchvision Faster / Mask R-CNN gets a
    :class:`~bbam_captum.detectors.TorchvisionRCNNAdapter`, another ``torch.nn.Module`` an
    :class:`~bbam_captum.detectors.MMDetTwoStageAdapter` (which refuses what it cannot explain),
    and an adapter is taken as it is.

    Raises:
        TypeError: ``model`` is neither a module nor an object with the adapter's methods
            (``method`` names the caller in the message).
    """
    if isinstance(model, torch.nn.Module):
        from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

        if isinstance(model, GeneralizedRCNN):
            from .torchvision_rcnn import TorchvisionRCNNAdapter

            return TorchvisionRCNNAdapter(model)
        from .mmdet_two_stage import MMDetTwoStageAdapter

        return MMDetTwoStageAdapter(model)
    if any(not hasattr(model, name) for name in ADAPTER_METHODS):
        raise TypeError(f"{method} needs a detector: an MMDetection two-stage model (torch.nn.Module, e.g. from "
                        "bbam_captum.load_detector()), a torchvision Faster/Mask R-CNN or a DetectorAdapter; "
                        f"got {type(model).__name__}")
    return model
