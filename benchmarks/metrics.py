"""Metrics of an attribution map for one box, each a small function."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from bbam_captum.labels import instance_masks
from bbam_captum.metrics import mask_iou

THRESHOLDS = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2))


def mask_ious(maps: Tensor, boxes: Tensor, true: Tensor, thresholds: Sequence[float] = THRESHOLDS) -> Tensor:
    """IoU with the true masks of each map thresholded at each threshold (kept inside the box).

    Args:
        maps (Tensor[K, 1, H, W]), boxes (Tensor[K, 4]), true (Tensor[K, H, W] bool).

    Returns:
        Tensor[T, K].
    """
    return torch.stack([mask_iou(instance_masks(maps, boxes, t), true) for t in thresholds])


def calibrate_threshold(ious: Tensor, thresholds: Sequence[float] = THRESHOLDS) -> float:
    """The threshold with the best mean IoU over the calibration objects (``ious``: Tensor[T, N])."""
    return float(thresholds[int(ious.mean(1).argmax())])


def energy_pointing_game(maps: Tensor, true: Tensor) -> Tensor:
    """Share of each map's positive mass inside the true mask: Tensor[K] (0 for an all-zero map)."""
    mass = maps[:, 0].clamp(min=0)
    total = mass.flatten(1).sum(1)
    inside = (mass * true).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.zeros_like(total))


def deletion_insertion_auc(score: Callable[[Tensor], Tensor], image: Tensor, attribution: Tensor, baseline: Tensor,
                           steps: int = 10) -> tuple[float, float]:
    """Area under the score curve as the most-attributed pixels are deleted, or inserted.

    Deletion replaces the top fraction f of pixels (by attribution, ties broken at random
    with a fixed seed) with the baseline; insertion starts from the baseline and restores
    them. f runs over ``steps + 1`` points in [0, 1]; the areas are normalised by the
    score on the intact image, so a faithful map gives a low deletion and a high
    insertion area.

    Args:
        score: ``images (Tensor[N, 3, H, W]) -> Tensor[N]``.
        image (Tensor[3, H, W]), attribution (Tensor[H, W]), baseline (Tensor[3, 1, 1] or Tensor[3, H, W]).

    Returns:
        (deletion_auc, insertion_auc).
    """
    height, width = attribution.shape
    g = torch.Generator().manual_seed(0)
    jitter = torch.rand(height * width, generator=g) * 1e-6
    order = torch.argsort(attribution.flatten().float() + jitter, descending=True)
    fractions = torch.linspace(0, 1, steps + 1)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    ranks = ranks.reshape(1, height, width)
    chosen = (ranks[None] < (fractions * height * width).round()[:, None, None, None]).float()  # [S + 1, 1, H, W]
    x, base = image[None].float(), baseline.float().expand_as(image)[None]
    with torch.no_grad():
        full = score(x)[0].clamp(min=1e-6)
        deleted = score(x * (1 - chosen) + base * chosen) / full
        inserted = score(base * (1 - chosen) + x * chosen) / full
    area = lambda y: float(torch.trapezoid(y.clamp(max=1.5), fractions))  # noqa: E731
    return area(deleted), area(inserted)


def size_bucket(box: Tensor) -> str:
    """COCO's size buckets on the box area: small < 32^2 <= medium < 96^2 <= large."""
    area = float((box[2] - box[0]) * (box[3] - box[1]))
    return "small" if area < 32**2 else "medium" if area < 96**2 else "large"
