"""Turning BBAM maps into pseudo labels: the label chain and its settings, instance masks, semantic label
maps, refinement."""
from .chain import LabelSettings, pseudo_masks
from .masks import instance_masks, smooth_maps
from .refine import refine_mask, refine_masks, segment_pools
from .semantic import IGNORE, semantic_label

__all__ = ["IGNORE", "LabelSettings", "instance_masks", "pseudo_masks", "smooth_maps", "refine_mask", "refine_masks",
           "segment_pools", "semantic_label"]
