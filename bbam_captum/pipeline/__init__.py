"""The pseudo-label pipeline: BBAM maps for every box of a dataset, then labels from them.

From Python, :func:`explain` and :func:`generate_labels` run it with any detector BBAM accepts,
:func:`relabel` remakes a run's labels from its saved maps, and :class:`RunLayout` names the files
of a run's output folder.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .api import Explanation, explain, generate_labels
    from .coco_input import CocoInput, ImageItem, read_coco
    from ..io.layout import RunLayout
    from .generate import compute_maps
    from .relabelling import relabel
    from .writers import write_labels

__all__ = ["CocoInput", "Explanation", "ImageItem", "RunLayout", "compute_maps", "explain", "generate_labels",
           "read_coco", "relabel", "write_labels"]
# lazy, so that the command line checks its input (pipeline.outputs) before torch loads
__getattr__ = lazy_attributes(__name__, {
    ".api": ("Explanation", "explain", "generate_labels"), ".coco_input": ("CocoInput", "ImageItem", "read_coco"),
    ".generate": ("compute_maps",), ".writers": ("write_labels",), ".relabelling": ("relabel",),
    "..io.layout": ("RunLayout",),
})
