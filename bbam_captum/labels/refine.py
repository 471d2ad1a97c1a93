"""Refinement of a pseudo mask with mask proposals (Eq. 4 of the paper).

``T_r = union of {m_i contained in T} and {argmax_i IoU(m_i, T)}``, kept inside the box.
MCG played the proposals' part in the paper; here scikit-image's Felzenszwalb segments at
several scales do (segments of all scales form one pool, so merges of fine segments are
there as coarser segments).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.segmentation import felzenszwalb

DEFAULT_SCALES = (30.0, 100.0, 300.0)


def segment_pools(image: np.ndarray, scales: Sequence[float] = DEFAULT_SCALES) -> list[np.ndarray]:
    """Felzenszwalb segmentations of an (H, W, 3) uint8 image, one label map (H, W) int per scale."""
    return [felzenszwalb(image, scale=s, sigma=0.5, min_size=max(8, int(s / 4))) for s in scales]


def refine_mask(mask: np.ndarray, box: Sequence[float], pools: Sequence[np.ndarray]) -> np.ndarray:
    """Eq. 4 on one pseudo mask.

    Args:
        mask (np.ndarray[H, W] bool): T, the BBAM mask.
        box: ``(x1, y1, x2, y2)``; proposals are cut to it.
        pools: label maps from :func:`segment_pools`.

    Returns:
        np.ndarray[H, W] bool, T_r; T itself when it is empty.
    """
    if not mask.any():
        return mask.copy()
    h, w = mask.shape
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    t = mask[y1:y2, x1:x2]
    refined = np.zeros_like(t)
    best_iou, best = -1.0, None
    t_area = int(t.sum())
    for pool in pools:
        seg = pool[y1:y2, x1:x2]
        ids, inverse = np.unique(seg, return_inverse=True)
        inverse = inverse.reshape(seg.shape)
        size = np.bincount(inverse.ravel(), minlength=len(ids))
        inside = np.bincount(inverse.ravel(), weights=t.ravel(), minlength=len(ids)).astype(np.int64)
        contained = (inside == size) & (size > 0)
        refined |= contained[inverse]
        iou = inside / (size + t_area - inside)
        i = int(np.argmax(iou))
        if iou[i] > best_iou:
            best_iou, best = float(iou[i]), inverse == i
    if best is not None:
        refined |= best
    out = np.zeros_like(mask)
    out[y1:y2, x1:x2] = refined
    return out


def refine_masks(masks: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]],
                 pools: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`refine_mask` on each box's mask.

    Args:
        masks (np.ndarray[K, H, W] bool), boxes (K boxes ``(x1, y1, x2, y2)``), pools as above.

    Returns:
        np.ndarray[K, H, W] bool.
    """
    if len(masks) == 0:
        return masks.copy()
    return np.stack([refine_mask(m, b, pools) for m, b in zip(masks, boxes)])
