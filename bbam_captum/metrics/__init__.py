"""Metrics on masks and maps."""
from .masks import box_masks, mask_iou

__all__ = ["box_masks", "mask_iou"]
