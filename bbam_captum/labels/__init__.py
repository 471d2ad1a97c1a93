"""Turning BBAM maps into pseudo labels: instance masks, semantic label maps, refinement."""
from .masks import instance_masks, smooth_maps
from .refine import refine_mask, refine_masks, segment_pools
from .semantic import IGNORE, semantic_label

__all__ = ["IGNORE", "instance_masks", "smooth_maps", "refine_mask", "refine_masks", "segment_pools", "semantic_label"]
