"""Box-wise dense CRF on attribution maps (the original implementation's step before Eq. 4).

The original turned each BBAM map into a mask with a fully connected CRF rather than a bare
threshold: the map, cut to its box, is scaled so that a share of the box's most-attributed
pixels saturates, blurred with a width that grows with the box, and used as the foreground
probability of a two-label dense CRF over the image (pydensecrf); pixels with a posterior
above 0.9 form the mask. A small box whose mask comes out too small is retried with the CRF
started from a flat probability inside the box. Eq. 4 (:mod:`.refine`) then refines the
result.

The CRF's cost grows with the image's pixels, and the blur's with its width too, which grows
with the image; the blur is therefore run on the box and its reach only, as a row and a column
pass. An image over the ``max_pixels`` budget (512 x 512 by default, about the largest PASCAL
VOC image, the size the original's kernels were set for) is inferred on a grid downscaled to
it, with the kernels' spatial widths scaled to the grid, and each posterior is upsampled back
to the image, guided by its colours, before it is cut at 0.9: every box still sees the whole
image, at a cost bounded by the budget. Images within the budget take the full-resolution path
unchanged. At 800 px the budget costs under 0.005 mIoU against full resolution, at half its
time (``benchmarks/crf_scale.py``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..ops import adaptive_stride
from .masks import smooth_maps
from .settings import DenseCRFSettings


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
    (building them costs about a third of a box's CRF; swapping the unary gives the same posterior).

    ``xy_scale`` ``(sx, sy)`` scales the kernels' spatial widths for an image that is a
    downscaled grid of the one they were set for.
    """

    def __init__(self, image: np.ndarray, settings: DenseCRFSettings,
                 xy_scale: tuple[float, float] = (1.0, 1.0)) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
        # imported here: the label chain without the CRF (and BBAM itself) runs where pydensecrf is absent
        import pydensecrf.densecrf as dcrf

        self.shape, self.iterations = image.shape[:2], settings.iterations
        sx, sy = xy_scale
        self.crf = dcrf.DenseCRF2D(image.shape[1], image.shape[0], 2)
        self.crf.addPairwiseGaussian(sxy=_scaled(settings.pos_xy_std, sx, sy), compat=settings.pos_weight)
        self.crf.addPairwiseBilateral(sxy=_scaled(settings.bi_xy_std, sx, sy), srgb=settings.bi_rgb_std,
                                      rgbim=np.ascontiguousarray(image), compat=settings.bi_weight)

    def foreground(self, prob: np.ndarray) -> np.ndarray:
        if prob.shape != self.shape:
            raise ValueError(f"prob must be (H, W) = {self.shape}, got {prob.shape}")
        return densecrf_foreground(self.crf, prob, self.iterations)


class ForegroundCRF(Protocol):
    """What :func:`box_posterior` infers with: an image's pairwise terms, set once, and the
    foreground posterior ``(H, W)`` of any prior ``(H, W)`` on them."""

    def foreground(self, prob: np.ndarray) -> np.ndarray: ...


def densecrf_foreground(crf: Any, prob: np.ndarray, iterations: int) -> np.ndarray:
    """Foreground posterior (H, W) float32 of a two-label ``pydensecrf`` model whose pairwise
    terms are set, started from the foreground probability ``prob`` (H, W)."""
    from pydensecrf.utils import unary_from_softmax

    unary = unary_from_softmax(np.stack([prob, 1 - prob]).astype(np.float32))
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    return np.asarray(crf.inference(iterations), dtype=np.float32).reshape(2, *prob.shape)[0]


def _scaled(std: float, sx: float, sy: float) -> float | tuple[float, float]:
    # a scalar at full resolution, so that images within the budget get the very same kernels
    return std if sx == sy == 1.0 else (std * sx, std * sy)


def crf_grid(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """The grid ``(h, w)`` the CRF infers an image of ``height x width`` pixels on: the image
    itself within ``max_pixels`` (or with 0), else the image downscaled, aspect kept, to at
    most ``max_pixels``."""
    if max_pixels <= 0 or height * width <= max_pixels:
        return height, width
    factor = (max_pixels / (height * width)) ** 0.5
    return max(1, int(height * factor)), max(1, int(width * factor))


def crf_masks(maps: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]], image: np.ndarray,
              top_share: float, settings: DenseCRFSettings = DenseCRFSettings(),
              blur_sigmas: np.ndarray | Sequence[float] | None = None) -> np.ndarray:
    """One mask per box from its map by the original's box-wise dense CRF.

    An image over ``settings.max_pixels`` is inferred on the grid of :func:`crf_grid` (image
    and maps area-averaged, boxes and the kernels' spatial widths scaled) and each posterior is
    upsampled to the image (:class:`_GuidedUpsampling`) before it is cut; the masks keep the
    image's size.

    Args:
        maps (np.ndarray[K, H, W]): attribution maps (any non-negative scale).
        boxes (K boxes ``(x1, y1, x2, y2)``): in pixels.
        image (np.ndarray[H, W, 3] uint8): RGB image.
        top_share: share of the box's pixels, the most attributed, that are scaled to
            certain foreground (the original's 1 - th_fg: 0.15 for its foreground labels,
            0.8 for the outer edge of its ignore band).
        blur_sigmas (K floats, optional): the Gaussian blur of each box's prior, in image
            pixels, so that the CRF, not the map's cells, draws the edges. Default: the
            original's mask cell for the box (:func:`~bbam_captum.ops.adaptive_stride`).

    Returns:
        np.ndarray[K, H, W] bool, each mask inside its box.
    """
    return crf_mask_sets(maps, boxes, image, (top_share,), settings, blur_sigmas)[0]


def crf_mask_sets(maps: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]], image: np.ndarray,
                  top_shares: Sequence[float], settings: DenseCRFSettings = DenseCRFSettings(),
                  blur_sigmas: np.ndarray | Sequence[float] | None = None) -> np.ndarray:
    """:func:`crf_masks` for several top shares at once, the same masks as one call per share.

    The image's part of the CRF (its pairwise terms, its grid and the guided upsampling) is
    built once for all shares and boxes; each share's prior is still inferred on its own.

    Args:
        maps, boxes, image, settings, blur_sigmas: as :func:`crf_masks`.
        top_shares (S floats): each as ``top_share`` of :func:`crf_masks`.

    Returns:
        np.ndarray[S, K, H, W] bool: the masks of each share, each inside its box.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if maps.ndim != 3 or len(maps) != len(boxes) or maps.shape[1:] != image.shape[:2]:
        raise ValueError(f"maps must be (K, H, W) with K = {len(boxes)} boxes and (H, W) = {image.shape[:2]}, "
                         f"got {maps.shape}")
    if not all(0.0 < share <= 1.0 for share in top_shares):
        raise ValueError(f"top_share must be in (0, 1], got {tuple(top_shares)}")
    if blur_sigmas is not None:
        blur_sigmas = np.asarray(blur_sigmas, dtype=np.float64).reshape(-1)
        if len(blur_sigmas) != len(boxes) or not np.all(np.isfinite(blur_sigmas) & (blur_sigmas >= 0)):
            raise ValueError(f"blur_sigmas must be {len(boxes)} finite numbers >= 0 (one per box), got {blur_sigmas}")
    masks = np.zeros((len(top_shares), *maps.shape), dtype=bool)
    if not len(boxes):
        return masks
    h, w = image.shape[:2]
    if blur_sigmas is None:
        blur_sigmas = [adaptive_stride(torch.as_tensor(box), h, w) for box in boxes]
    grid = crf_grid(h, w, settings.max_pixels)
    if grid == (h, w):
        scale_xy, grid_image, grid_maps, grid_boxes = (1.0, 1.0), image, maps, boxes

        def to_image(posterior: np.ndarray, extent: tuple[slice, slice]) -> np.ndarray:
            return posterior[extent]
    else:
        scale_xy = (grid[1] / w, grid[0] / h)
        grid_image = _resize(image.transpose(2, 0, 1), grid).round().clip(0, 255).astype(np.uint8).transpose(1, 2, 0)
        grid_maps, grid_boxes = _resize(maps, grid), boxes * np.array([*scale_xy, *scale_xy])
        upsample = _GuidedUpsampling(image, grid_image, settings.bi_rgb_std)

        def to_image(posterior: np.ndarray, extent: tuple[slice, slice]) -> np.ndarray:
            return upsample(posterior, settings.keep, extent)
    windows = _CRFWindows(grid_image, settings, scale_xy)
    for k, (map_, box, grid_box, sigma) in enumerate(zip(grid_maps, boxes, grid_boxes, blur_sigmas)):
        extent = box_extent(box, h, w)  # the mask is cut to its box: only the box's pixels are needed
        rows, cols = window = windows.around(grid_box)
        crf = windows.crf(window)
        offset = np.array([cols.start, rows.start, cols.start, rows.start])
        for s, share in enumerate(top_shares):
            posterior = np.zeros(grid, dtype=np.float32)
            posterior[window] = box_posterior(map_[window], grid_box - offset, crf, share, settings,
                                              float(sigma) * scale_xy[1], grid[0] * grid[1])
            masks[s, k][extent] = to_image(posterior, extent) > settings.keep
    return masks


class _CRFWindows:
    """The CRFs a grid image's boxes are inferred with: the image's own, built once, for a box whose
    window (``settings.window`` bilateral widths around it) covers the image, and one per window
    otherwise (its pairwise terms cost in proportion to its pixels)."""

    def __init__(self, image: np.ndarray, settings: DenseCRFSettings, xy_scale: tuple[float, float]) -> None:
        self.image, self.settings, self.xy_scale = image, settings, xy_scale
        self.whole: _ImageCRF | None = None
        h, w = image.shape[:2]
        self.all = (slice(0, h), slice(0, w))
        # the kernel's width on the grid; 0 (no window) reaches past any image
        reach = settings.window * settings.bi_xy_std
        self.margin = int(np.ceil(reach * max(xy_scale))) if settings.window > 0 else h + w

    def around(self, box: np.ndarray) -> tuple[slice, slice]:
        """Rows and columns of the box's window on the grid."""
        h, w = self.image.shape[:2]
        return box_extent(box, h, w, margin=self.margin)

    def crf(self, window: tuple[slice, slice]) -> _ImageCRF:
        if window == self.all:
            if self.whole is None:
                self.whole = _ImageCRF(self.image, self.settings, self.xy_scale)
            return self.whole
        return _ImageCRF(np.ascontiguousarray(self.image[window]), self.settings, self.xy_scale)


class _GuidedUpsampling:
    """Joint bilateral upsampling (Kopf et al., 2007) of grid posteriors to the image.

    Bilinear upsampling would cut every edge through the grid cells that straddle it, losing a
    rim of about a cell; here a pixel near the cut takes the mean posterior of the cells around
    it weighted by their distance and by how close their colour is to its own (the CRF's colour
    width), so that masks follow the image's edges. Pixels whose cells all lie on one side of
    the cut keep the bilinear value.
    """

    def __init__(self, image: np.ndarray, grid_image: np.ndarray, rgb_std: float, radius: int = 2) -> None:
        (h, w), (gh, gw) = image.shape[:2], grid_image.shape[:2]
        self.image, self.grid_image = image.astype(np.float32), grid_image.astype(np.float32)
        self.shape, self.rgb_std, self.radius = (h, w), rgb_std, radius
        # grid coordinates of the pixel centres (cell centres at integers) and the nearest cells
        self.gy = ((np.arange(h) + 0.5) * gh / h - 0.5).astype(np.float32)
        self.gx = ((np.arange(w) + 0.5) * gw / w - 0.5).astype(np.float32)
        self.cy = np.clip(np.rint(self.gy), 0, gh - 1).astype(np.int64)
        self.cx = np.clip(np.rint(self.gx), 0, gw - 1).astype(np.int64)

    def __call__(self, posterior: np.ndarray, cut: float, extent: tuple[slice, slice]) -> np.ndarray:
        """Posterior (h, w) on the grid -> its ``extent`` (rows, columns) of the (H, W) image."""
        gh, gw = posterior.shape
        grid = torch.from_numpy(posterior)[None, None]
        out = F.interpolate(grid, size=self.shape, mode="bilinear", align_corners=False)[0, 0].numpy()[extent]
        rows, cols = self.cy[extent[0]], self.cx[extent[1]]  # the cells the extent's pixels sit in (ascending)
        if not rows.size or not cols.size:
            return out
        # cells with a cell on each side of the cut within the radius, judged on the window of the
        # extent's cells and their neighbours only (the max-pools of the whole grid give the same there)
        size, r = 2 * self.radius + 1, self.radius
        top, left = max(int(rows[0]) - r, 0), max(int(cols[0]) - r, 0)
        window = grid[..., top:int(rows[-1]) + r + 1, left:int(cols[-1]) + r + 1]
        above = F.max_pool2d(window, size, stride=1, padding=r)[0, 0].numpy() > cut
        below = -F.max_pool2d(-window, size, stride=1, padding=r)[0, 0].numpy() <= cut
        ys, xs = np.nonzero((above & below)[rows[:, None] - top, cols[None, :] - left])  # pixels near the cut
        if not len(ys):
            return out
        iy, ix = ys + extent[0].start, xs + extent[1].start  # the same pixels in the image
        offsets = np.arange(-self.radius, self.radius + 1)
        ny = np.clip(self.cy[iy][None, :] + offsets.repeat(size)[:, None], 0, gh - 1)  # [S*S, N]
        nx = np.clip(self.cx[ix][None, :] + np.tile(offsets, size)[:, None], 0, gw - 1)
        near = np.exp(-((self.gy[iy] - ny) ** 2 + (self.gx[ix] - nx) ** 2) / 2)
        colour = ((self.image[iy, ix][None] - self.grid_image[ny, nx]) ** 2).sum(-1)  # [S*S, N]
        # a floor, so that a pixel unlike every cell around it falls back to its nearest cells
        weight = near * (np.exp(-colour / (2 * self.rgb_std ** 2)) + 1e-4)
        out[ys, xs] = (weight * posterior[ny, nx]).sum(0) / weight.sum(0)
        return out


def _resize(arrays: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-averaged (C, H, W) -> (C, h, w) float32."""
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(arrays, dtype=np.float32))[None], size=size,
                         mode="area")[0].numpy()


def box_extent(box: np.ndarray, h: int, w: int, margin: int = 0) -> tuple[slice, slice]:
    """Rows and columns of the box rounded outwards, grown by ``margin`` and cut to the image."""
    # ends clipped at 0 too: a negative end would count from the far side of the image
    return (slice(max(0, int(np.floor(box[1])) - margin), max(0, min(h, int(np.ceil(box[3])) + margin))),
            slice(max(0, int(np.floor(box[0])) - margin), max(0, min(w, int(np.ceil(box[2])) + margin))))


def _inside(box: np.ndarray, h: int, w: int) -> np.ndarray:
    """The box's pixels (H, W) bool."""
    inside = np.zeros((h, w), dtype=bool)
    inside[box_extent(box, h, w)] = True
    return inside


def box_posterior(map_: np.ndarray, box: np.ndarray, crf: ForegroundCRF, top_share: float,
                  settings: DenseCRFSettings, sigma: float, image_area: int) -> np.ndarray:
    """Foreground posterior of the prior one box's mask is taken from: its map's, or a small
    box's flat retry (the step :func:`crf_mask_sets` takes per box and share).

    Args:
        map_ (np.ndarray[h, w]): the box's attribution map on the CRF's window of the grid.
        box (np.ndarray[4]): ``(x1, y1, x2, y2)`` in the window's pixels.
        crf (ForegroundCRF): the window's pairwise terms.
        top_share: as :func:`crf_masks`.
        sigma: the prior's blur, in the window's pixels.
        image_area: the grid's pixels, which tell a small box.

    Returns:
        np.ndarray[h, w] float32; zero for a box with no pixel.
    """
    h, w = map_.shape
    inside = _inside(box, h, w)
    area = int(inside.sum())
    if area == 0:
        return np.zeros((h, w), dtype=np.float32)
    prior = np.where(inside, np.clip(map_, 0, None), 0).astype(np.float32)
    # the top_share most-attributed pixels of the box saturate at 1, the rest scale with them
    ranked = np.sort(prior[inside])[::-1]
    prior = np.clip(prior / (ranked[min(int(area * top_share), area - 1)] + 1e-8), 0, 1)
    # the prior is zero outside the box: blurring the box and the blur's reach gives the same box pixels
    reach = box_extent(box, h, w, margin=int(3 * sigma))
    blurred = np.zeros_like(prior)
    blurred[reach] = smooth_maps(torch.from_numpy(prior[reach])[None, None], sigma)[0, 0].numpy()
    prior = blurred * inside
    if prior.max() > 0:
        prior = prior / prior.max()
    posterior = crf.foreground(prior)
    mask = (posterior > settings.keep) & inside
    if mask.sum() > settings.min_share * area or area > settings.small_box * image_area:
        return posterior
    # a small box with too little foreground: start the CRF from a flat probability in the box
    for p in settings.retry_probs:
        prior = np.where(inside, p, 0.0)
        prior[mask] = 1.0
        posterior = crf.foreground(prior.astype(np.float32))
        if ((posterior > settings.keep) & inside).sum() > settings.retry_share * area:
            return posterior
    return posterior
