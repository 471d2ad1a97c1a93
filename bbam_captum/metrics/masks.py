"""Overlap of predicted and true masks."""
from __future__ import annotations

import torch
from torch import Tensor

from ..labels import instance_masks


def mask_iou(pred: Tensor, true: Tensor) -> Tensor:
    """IoU of matching masks: ``Tensor[K, H, W]`` bool twice -> ``Tensor[K]`` (1 when both are empty)."""
    if pred.shape != true.shape:
        raise ValueError(f"mask shapes differ: {tuple(pred.shape)} and {tuple(true.shape)}")
    inter = (pred & true).flatten(1).sum(1).float()
    union = (pred | true).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """The boxes filled as masks (the trivial baseline): ``Tensor[K, 4]`` -> ``Tensor[K, H, W]`` bool."""
    ones = torch.ones((boxes.shape[0], height, width))
    return instance_masks(ones, boxes, 0.5)
