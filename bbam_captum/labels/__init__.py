"""Turning BBAM maps into pseudo labels: the label chain and its settings, instance masks, semantic label
maps, refinement."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .chain import CRFMasks, pseudo_masks
    from .masks import instance_masks, smooth_maps
    from .refine import Segments, box_segment_pools, refine_mask, refine_masks, segment_pools
    from .semantic import IGNORE, semantic_label
    from .settings import LabelSettings

__all__ = ["CRFMasks", "IGNORE", "LabelSettings", "Segments", "box_segment_pools", "instance_masks", "pseudo_masks",
           "smooth_maps", "refine_mask", "refine_masks", "segment_pools", "semantic_label"]
# lazy, so that the settings (no torch) load alone: the command line reads their defaults for --help
__getattr__ = lazy_attributes(__name__, {
    ".chain": ("CRFMasks", "pseudo_masks"), ".masks": ("instance_masks", "smooth_maps"),
    ".refine": ("Segments", "box_segment_pools", "refine_mask", "refine_masks", "segment_pools"),
    ".semantic": ("IGNORE", "semantic_label"),
    ".settings": ("LabelSettings",),
})
