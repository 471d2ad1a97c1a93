"""The label chain: how one image's BBAM maps become instance masks and semantic claims.

:class:`LabelSettings` holds the rules (the dense CRF or thresholds, the refinement of Eq. 4),
:func:`pseudo_masks` applies them; ``generate``, ``labels`` and the benchmarks all use these two.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from .crf import DenseCRFSettings, crf_masks
from .masks import instance_masks, smooth_maps
from .refine import refine_masks, segment_pools

MIN_CRF_PIXELS = 256  # the smallest CRF grid (16 x 16 for a square image) that crf_max_pixels may ask for


@dataclass
class LabelSettings:
    """How BBAM maps become pseudo labels.

    With ``crf`` (the default, as the original implementation) each map goes through the
    box-wise dense CRF of :func:`bbam_captum.labels.crf.crf_masks` twice: with
    ``crf_fg_share`` it gives the instance mask and the semantic foreground, with the wider
    ``crf_bg_share`` the edge of the ignore band. Without ``crf`` the maps are blurred and
    cut at the thresholds ``theta_*`` and ``instance_threshold`` instead.

    Attributes:
        theta_fg: above it, semantic foreground of the box's class (without ``crf``).
        theta_bg: below it, background; between the two, ignore (255) (without ``crf``).
        instance_threshold: above it, the instance mask (inside the box) (without ``crf``).
        refine: apply the mask-proposal refinement of Eq. 4 to the masks (the paper refines
            its pseudo labels, with MCG proposals; here Felzenszwalb segments stand in).
        blur_sigma: Gaussian blur of the maps before thresholding, in pixels (without
            ``crf``, which blurs by its own rule); 0 disables.
        crf: use the dense CRF instead of the thresholds.
        crf_fg_share: share of a box's most-attributed pixels taken as certain
            foreground for the instance mask and semantic foreground (the original's
            1 - 0.85).
        crf_bg_share: the same for the outer edge of the ignore band (the original's 1 - 0.2).
        crf_blur: the Gaussian blur of each map before the CRF, in mask cells of its box (the
            map's own resolution): the CRF, not the cells, then draws the edges.
        crf_max_pixels: an image with more pixels is inferred on a grid of about this many
            (:class:`~bbam_captum.labels.crf.DenseCRFSettings`); 0: always at full resolution.
    """

    # Chosen on val images 0-7 with the bundled detector:
    # BBAM's maps are low-valued and patchy, so a blur and a low threshold work best.
    theta_fg: float = 0.1
    theta_bg: float = 0.05
    instance_threshold: float = 0.1
    # The paper's full chain (CRF, then Eq. 4), chosen across worlds by leave-one-world-out
    # (benchmarks/results/worlds.md): on the shapes world it costs 0.002-0.01 against the CRF
    # alone, on the camouflage and photo worlds it adds 0.02-0.04.
    refine: bool = True
    blur_sigma: float = 3.0
    crf: bool = True
    crf_fg_share: float = 0.15
    crf_bg_share: float = 0.8
    # One cell (the map's own resolution), chosen by leave-one-world-out against 1/3 and 2/3
    # (2/3 was the original's stride rule): every world picks it, +0.012-0.022 instance mIoU.
    crf_blur: float = 1.0
    crf_max_pixels: int = DenseCRFSettings().max_pixels

    @property
    def needs_image(self) -> bool:
        """Whether the rules read the image (the CRF's colours, Eq. 4's segments)."""
        return self.crf or self.refine

    def __post_init__(self) -> None:
        if not 0.0 < self.crf_fg_share <= self.crf_bg_share <= 1.0:
            raise InputError(f"CRF shares must satisfy 0 < crf_fg_share <= crf_bg_share <= 1, got "
                             f"crf_fg_share={self.crf_fg_share}, crf_bg_share={self.crf_bg_share}")
        if not 0.0 <= self.theta_bg <= self.theta_fg <= 1.0:
            raise InputError(f"thresholds must satisfy 0 <= theta_bg <= theta_fg <= 1, got theta_bg={self.theta_bg}, "
                             f"theta_fg={self.theta_fg}")
        if not 0.0 <= self.instance_threshold <= 1.0:
            raise InputError(f"instance_threshold must lie in [0, 1], got {self.instance_threshold}")
        if self.crf_max_pixels < 0 or 0 < self.crf_max_pixels < MIN_CRF_PIXELS:
            raise InputError(f"crf_max_pixels must be >= 0 (0: full resolution) and, above 0, at least "
                             f"{MIN_CRF_PIXELS} (a 16 x 16 grid: the guided upsampling needs neighbours), got "
                             f"{self.crf_max_pixels}")
        if not 0.0 <= self.crf_blur <= 10.0:
            raise InputError(f"crf_blur must lie in [0, 10] mask cells, got {self.crf_blur}")
        if not 0.0 <= self.blur_sigma <= 100.0:
            raise InputError(f"blur_sigma must lie in [0, 100] px, got {self.blur_sigma}")


def pseudo_masks(maps: np.ndarray, boxes: np.ndarray, settings: LabelSettings, image: np.ndarray | None,
                 cells: np.ndarray | Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance masks, foreground and uncertain claims of one image's boxes.

    Args:
        maps (np.ndarray[K, H, W]), boxes (np.ndarray[K, 4]); ``image`` (H, W, 3) uint8
        is needed with ``settings.crf`` or ``settings.refine``.
        cells (np.ndarray[K]): image pixels per mask cell of each map (BBAM's per-box
            ``stride``, :class:`~bbam_captum.attr.bbam.BoxRecord`), needed with ``settings.crf``:
            the CRF's prior is blurred by ``settings.crf_blur`` of them.

    Returns:
        instance, foreground, uncertain: each np.ndarray[K, H, W] bool (uncertain: claimed
        by the wider mask, not by the foreground).
    """
    if settings.needs_image and image is None:
        raise ValueError("the CRF and the refinement (settings.crf, settings.refine) need the image; pass it, "
                         "or use crf=False, refine=False")
    maps = maps.astype(np.float32)
    if settings.crf:
        crf = DenseCRFSettings(max_pixels=settings.crf_max_pixels)
        if cells is None or len(cells) != len(boxes):
            raise ValueError(f"the CRF blurs each map by its mask cells: cells must hold one size per box "
                             f"({len(boxes)}), got {None if cells is None else len(cells)}")
        sigmas = settings.crf_blur * np.asarray(cells, dtype=np.float64)
        instance = crf_masks(maps, boxes, image, settings.crf_fg_share, crf, sigmas)
        foreground, wider = instance, crf_masks(maps, boxes, image, settings.crf_bg_share, crf, sigmas)
    else:
        maps_t = smooth_maps(torch.from_numpy(maps)[:, None], settings.blur_sigma)
        boxes_t = torch.from_numpy(boxes)
        instance = instance_masks(maps_t, boxes_t, settings.instance_threshold).numpy()
        foreground = instance_masks(maps_t, boxes_t, settings.theta_fg).numpy()
        wider = instance_masks(maps_t, boxes_t, settings.theta_bg).numpy()
    if settings.refine and len(boxes):
        pools = segment_pools(image)
        refined_instance = refine_masks(instance, boxes, pools)
        foreground = refined_instance if foreground is instance else refine_masks(foreground, boxes, pools)
        instance = refined_instance
        if settings.crf:  # the original refined its wider masks too, keeping the foreground in them
            wider = refine_masks(wider, boxes, pools) | foreground
    return instance, foreground, wider & ~foreground
