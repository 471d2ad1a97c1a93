"""The pseudo-label pipeline: BBAM maps for every box of a dataset, then labels from them.

From Python, :func:`explain` and :func:`generate_labels` run it with any detector BBAM accepts.
"""
from .api import Explanation, explain, generate_labels
from .coco_input import CocoInput, ImageItem, read_coco
from .generate import compute_maps
from .writers import write_labels

__all__ = ["CocoInput", "Explanation", "ImageItem", "compute_maps", "explain", "generate_labels", "read_coco",
           "write_labels"]
