"""Attribution methods: BBAM, and Grad-CAM for boxes as its baseline."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .bbam import BBAM, BoxRecord, MaskOptimiser, optimise_masks
    from .gradcam import BoxGradCAM
    from .memory import StepMemoryEstimate, estimate_step_memory
    from .proposals import PositiveProposals, PositiveSelector, box_generator, select_positives
    from .settings import BBAMSettings

__all__ = ["BBAM", "BBAMSettings", "BoxGradCAM", "BoxRecord", "MaskOptimiser", "PositiveProposals", "PositiveSelector",
           "StepMemoryEstimate", "box_generator", "estimate_step_memory", "optimise_masks", "select_positives"]
# lazy, so that the settings (no torch) load alone: the command line reads their defaults for --help
__getattr__ = lazy_attributes(__name__, {
    ".bbam": ("BBAM", "BoxRecord", "MaskOptimiser", "optimise_masks"), ".gradcam": ("BoxGradCAM",),
    ".memory": ("StepMemoryEstimate", "estimate_step_memory"),
    ".proposals": ("PositiveProposals", "PositiveSelector", "box_generator", "select_positives"),
    ".settings": ("BBAMSettings",)})
