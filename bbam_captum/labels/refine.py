"""Refinement of a pseudo mask with mask proposals (Eq. 4 of the paper).

``T_r = union of {m_i contained in T} and {argmax_i IoU(m_i, T)}``, kept inside the box.
MCG played the proposals' part in the paper; here scikit-image's Felzenszwalb segments at
several scales do (segments of all scales form one pool, so merges of fine segments are
there as coarser segments).

As in the original implementation, a proposal takes part only when (nearly) all of it lies
inside the box, judged on its whole extent: a background segment that runs out of the box
is left out rather than cut to the box and kept.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.segmentation import felzenszwalb

DEFAULT_SCALES = (30.0, 100.0, 300.0)
DEFAULT_OVERLAP = 0.95  # the original's share of a proposal that must lie inside the box, and inside T


def segment_pools(image: np.ndarray, scales: Sequence[float] = DEFAULT_SCALES) -> list[np.ndarray]:
    """Felzenszwalb segmentations of an (H, W, 3) uint8 image, one label map (H, W) int per scale."""
    return [felzenszwalb(image, scale=s, sigma=0.5, min_size=max(8, int(s / 4))) for s in scales]


def refine_mask(mask: np.ndarray, box: Sequence[float], pools: Sequence[np.ndarray],
                overlap: float = DEFAULT_OVERLAP) -> np.ndarray:
    """Eq. 4 on one pseudo mask.

    Args:
        mask (np.ndarray[H, W] bool): T, the BBAM mask (only its part inside the box counts).
        box: ``(x1, y1, x2, y2)``.
        pools: label maps ``(H, W)`` from :func:`segment_pools`.
        overlap: a proposal is a candidate when more than this share of it lies inside the
            box; a candidate is contained in T when more than this share of it lies in T.

    Returns:
        np.ndarray[H, W] bool, T_r inside the box; T itself when it is empty or no
        proposal lies inside the box.
    """
    return refine_masks(mask[None], [box], pools, overlap)[0]


def refine_masks(masks: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]],
                 pools: Sequence[np.ndarray], overlap: float = DEFAULT_OVERLAP) -> np.ndarray:
    """:func:`refine_mask` on each box's mask (the pools are indexed once for all boxes).

    Args:
        masks (np.ndarray[K, H, W] bool), boxes (K boxes ``(x1, y1, x2, y2)``), pools and
        overlap as above.

    Returns:
        np.ndarray[K, H, W] bool.
    """
    if not 0.0 < overlap <= 1.0:
        raise ValueError(f"overlap must be in (0, 1], got {overlap}")
    if len(masks) == 0:
        return masks.copy()
    indexed = [_index(p) for p in pools]
    return np.stack([_refine(m, b, indexed, overlap) for m, b in zip(masks, boxes)])


def _index(pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A label map as ``(segment index per pixel (H, W), pixels per segment (N,))``."""
    if np.issubdtype(pool.dtype, np.integer) and pool.min() >= 0:
        size = np.bincount(pool.ravel())
        if size.all():  # labels 0..N-1 without gaps (Felzenszwalb's): already an index, no sort needed
            return pool, size
    _, inverse = np.unique(pool, return_inverse=True)
    inverse = inverse.reshape(pool.shape)
    return inverse, np.bincount(inverse.ravel())


def _refine(mask: np.ndarray, box: Sequence[float], indexed: Sequence[tuple[np.ndarray, np.ndarray]],
            overlap: float) -> np.ndarray:
    if not mask.any():
        return mask.copy()
    h, w = mask.shape
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    t = mask[y1:y2, x1:x2]
    t_area = int(t.sum())
    refined = np.zeros_like(t)
    best_iou, best = 0.0, None
    # only segments with pixels in the box can be candidates: count on the box's crop, against
    # each segment's size in the whole image
    for inverse, size in indexed:
        crop = inverse[y1:y2, x1:x2]
        inside_box = np.bincount(crop.ravel(), minlength=len(size))
        inside_t = np.bincount(crop.ravel(), weights=t.ravel(), minlength=len(size))
        needed = overlap * size - 1e-9  # overlap 1.0: all of the segment
        candidate = inside_box > needed
        refined |= (candidate & (inside_t > needed))[crop]
        iou = np.where(candidate, inside_t / (size + t_area - inside_t), -1.0)
        i = int(np.argmax(iou))
        if iou[i] > best_iou:
            best_iou, best = float(iou[i]), crop == i
    if best is None:  # no proposal lies inside the box: nothing to refine with
        return mask.copy()
    out = np.zeros_like(mask)
    out[y1:y2, x1:x2] = refined | best
    return out
