"""Small pure tensor functions that BBAM is built from."""
from .boxes import box_iou_pairwise, check_boxes, jitter_boxes
from .masks import adaptive_stride, initial_mask, perturb, total_variation, upsample_mask

__all__ = [
    "adaptive_stride", "box_iou_pairwise", "check_boxes", "initial_mask", "jitter_boxes",
    "perturb", "total_variation", "upsample_mask",
]
