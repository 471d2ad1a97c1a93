"""Semantic pseudo labels: one class index per pixel, 0 = background, 255 = ignore."""
from __future__ import annotations

import numpy as np

IGNORE = 255


def _contains(outer: np.ndarray, inner: np.ndarray) -> bool:
    """Whether box ``inner`` (x1, y1, x2, y2) lies wholly inside box ``outer``."""
    return bool(outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3])


def semantic_label(foreground: np.ndarray, uncertain: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Composes per-box masks into one label image.

    A pixel is its box's class (``classes + 1``) where that box claims it as foreground,
    ignore where it is uncertain for some box and foreground for none, background
    elsewhere. A pixel claimed by boxes of two classes is ignored, unless one box lies
    wholly inside the other: then the inner box wins (the original's rule).

    Args:
        foreground (np.ndarray[K, H, W] bool): pixels each box claims.
        uncertain (np.ndarray[K, H, W] bool): pixels between the two thresholds.
        boxes (np.ndarray[K, 4]): ``(x1, y1, x2, y2)``.
        classes (np.ndarray[K] int): 0-based class per box.

    Returns:
        np.ndarray[H, W] uint8.
    """
    k, height, width = foreground.shape
    label = np.zeros((height, width), np.uint8)
    owner = np.full((height, width), -1, np.int64)  # which box set each foreground pixel
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in np.argsort(-areas, kind="stable"):  # large boxes first, so inner boxes come later
        claim = foreground[i]
        taken = claim & (owner >= 0)
        value = np.uint8(classes[i] + 1)
        for j in np.unique(owner[taken]):
            pixels = taken & (owner == j)
            if classes[j] == classes[i] or _contains(boxes[j], boxes[i]):
                continue  # same class, or this box lies inside the earlier one: it wins
            label[pixels] = IGNORE
            claim = claim & ~pixels
        label[claim] = value
        owner[claim] = i
    band = uncertain.any(0) & (owner < 0)
    label[band] = IGNORE
    return label
