"""Small pure tensor functions that BBAM is built from."""
from .boxes import box_iou_pairwise, check_boxes, jitter_boxes, to_rois
from .masks import adaptive_stride, initial_mask, perturb, total_variation, upsample_mask

__all__ = [
    "adaptive_stride", "box_iou_pairwise", "check_boxes", "initial_mask", "jitter_boxes",
    "perturb", "to_rois", "total_variation", "upsample_mask",
]
