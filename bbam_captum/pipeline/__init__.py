"""The pseudo-label pipeline: BBAM maps for every box of a dataset, then labels from them."""
from .coco_input import CocoInput, ImageItem, read_coco
from .generate import compute_maps
from .writers import write_labels

__all__ = ["CocoInput", "ImageItem", "compute_maps", "read_coco", "write_labels"]
