"""Box-wise dense CRF on attribution maps (the original implementation's step before Eq. 4).

The original turned each BBAM map into a mask with a fully connected CRF rather than a bare
threshold: the map, cut to its box, is scaled so that a share of the box's most-attributed
pixels saturates, blurred with a width that grows with the box, and used as the foreground
probability of a two-label dense CRF over the image (pydensecrf); pixels with a posterior
above 0.9 form the mask. A small box whose mask comes out too small is retried with the CRF
started from a flat probability inside the box. Eq. 4 (:mod:`.refine`) then refines the
result.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydensecrf.densecrf as dcrf
import torch
from pydensecrf.utils import unary_from_softmax

from ..ops import adaptive_stride
from .masks import smooth_maps


@dataclass(frozen=True)
class DenseCRFSettings:
    """The original's CRF kernels (pixels, RGB levels) and its acceptance rules.

    Attributes:
        iterations: mean-field steps.
        pos_xy_std, pos_weight: the smoothness (Gaussian) kernel.
        bi_xy_std, bi_rgb_std, bi_weight: the appearance (bilateral) kernel.
        keep: posterior above which a pixel is foreground.
        small_box: a box below this share of the image whose mask covers under
            ``min_share`` of the box is retried from flat probabilities ``retry_probs``,
            the first giving over ``retry_share`` of the box kept.
    """

    iterations: int = 10
    pos_xy_std: float = 1.0
    pos_weight: float = 3.0
    bi_xy_std: float = 80.0
    bi_rgb_std: float = 3.0
    bi_weight: float = 4.0
    keep: float = 0.9
    small_box: float = 0.1
    min_share: float = 0.2
    retry_probs: tuple[float, ...] = (0.7, 0.8, 0.9, 0.95, 0.96)
    retry_share: float = 1 / 3


def crf_foreground(image: np.ndarray, prob: np.ndarray, settings: DenseCRFSettings = DenseCRFSettings()) -> np.ndarray:
    """Posterior foreground probability of a two-label dense CRF.

    Args:
        image (np.ndarray[H, W, 3] uint8): RGB image.
        prob (np.ndarray[H, W]): prior foreground probability in [0, 1].

    Returns:
        np.ndarray[H, W] float32.
    """
    return _ImageCRF(image, settings).foreground(prob)


class _ImageCRF:
    """The pairwise terms of one image, built once and shared by every prior inferred on it
    (building them costs about a third of a box's CRF; swapping the unary gives the same posterior)."""

    def __init__(self, image: np.ndarray, settings: DenseCRFSettings) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
        self.shape, self.iterations = image.shape[:2], settings.iterations
        self.crf = dcrf.DenseCRF2D(image.shape[1], image.shape[0], 2)
        self.crf.addPairwiseGaussian(sxy=settings.pos_xy_std, compat=settings.pos_weight)
        self.crf.addPairwiseBilateral(sxy=settings.bi_xy_std, srgb=settings.bi_rgb_std,
                                      rgbim=np.ascontiguousarray(image), compat=settings.bi_weight)

    def foreground(self, prob: np.ndarray) -> np.ndarray:
        if prob.shape != self.shape:
            raise ValueError(f"prob must be (H, W) = {self.shape}, got {prob.shape}")
        unary = unary_from_softmax(np.stack([prob, 1 - prob]).astype(np.float32))
        self.crf.setUnaryEnergy(np.ascontiguousarray(unary))
        return np.asarray(self.crf.inference(self.iterations), dtype=np.float32).reshape(2, *self.shape)[0]


def crf_masks(maps: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]], image: np.ndarray,
              top_share: float, settings: DenseCRFSettings = DenseCRFSettings()) -> np.ndarray:
    """One mask per box from its map by the original's box-wise dense CRF.

    Args:
        maps (np.ndarray[K, H, W]): attribution maps (any non-negative scale).
        boxes (K boxes ``(x1, y1, x2, y2)``): in pixels.
        image (np.ndarray[H, W, 3] uint8): RGB image.
        top_share: share of the box's pixels, the most attributed, that are scaled to
            certain foreground (the original's 1 - th_fg: 0.15 for its foreground labels,
            0.8 for the outer edge of its ignore band).

    Returns:
        np.ndarray[K, H, W] bool, each mask inside its box.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if maps.ndim != 3 or len(maps) != len(boxes) or maps.shape[1:] != image.shape[:2]:
        raise ValueError(f"maps must be (K, H, W) with K = {len(boxes)} boxes and (H, W) = {image.shape[:2]}, "
                         f"got {maps.shape}")
    if not 0.0 < top_share <= 1.0:
        raise ValueError(f"top_share must be in (0, 1], got {top_share}")
    if not len(boxes):
        return np.zeros(maps.shape, dtype=bool)
    crf = _ImageCRF(image, settings)
    return np.stack([_crf_mask(m, b, crf, top_share, settings) for m, b in zip(maps, boxes)])


def _crf_mask(map_: np.ndarray, box: np.ndarray, crf: _ImageCRF, top_share: float,
              settings: DenseCRFSettings) -> np.ndarray:
    h, w = map_.shape
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    inside = np.zeros((h, w), dtype=bool)
    inside[y1:y2, x1:x2] = True
    area = int(inside.sum())
    if area == 0:
        return inside
    prior = np.where(inside, np.clip(map_, 0, None), 0).astype(np.float32)
    # the top_share most-attributed pixels of the box saturate at 1, the rest scale with them
    ranked = np.sort(prior[inside])[::-1]
    prior = np.clip(prior / (ranked[min(int(area * top_share), area - 1)] + 1e-8), 0, 1)
    # blurred as wide as BBAM's mask cells for this box, so that the CRF, not the cells, draws the edges
    sigma = adaptive_stride(torch.as_tensor(box), h, w)
    prior = smooth_maps(torch.from_numpy(prior)[None, None], sigma)[0, 0].numpy() * inside
    if prior.max() > 0:
        prior = prior / prior.max()
    mask = (crf.foreground(prior) > settings.keep) & inside
    if mask.sum() > settings.min_share * area or area > settings.small_box * h * w:
        return mask
    # a small box with too little foreground: start the CRF from a flat probability in the box
    for p in settings.retry_probs:
        prior = np.where(inside, p, 0.0)
        prior[mask] = 1.0
        retried = (crf.foreground(prior.astype(np.float32)) > settings.keep) & inside
        if retried.sum() > settings.retry_share * area:
            return retried
    return retried
