"""Mask helpers: stride, initialisation, upsampling, perturbation, smoothness."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def adaptive_stride(box: Tensor, height: int, width: int, stride_range: tuple[float, float] = (0.02, 0.08)) -> int:
    """The mask stride for a box, growing with its size (the original implementation's rule).

    The original used ``s = 16 + 48 * sqrt(box_area / image_area)`` on images of about
    800 px; written relative to the image's shorter side this is
    ``s = short_side * (lo + (hi - lo) * sqrt(box_area / image_area))`` with
    ``(lo, hi) = (0.02, 0.08)``, identical at 800 px and giving masks of the same
    resolution on any image size.

    Args:
        box (Tensor[4]): ``(x1, y1, x2, y2)``.
        stride_range: ``(lo, hi)``, the stride as a fraction of the shorter image side
            for a vanishing box and for a box filling the image.

    Returns:
        int: stride >= 1.
    """
    lo, hi = stride_range
    area = float((box[2] - box[0]) * (box[3] - box[1]))
    ratio = min(max(area / float(height * width), 0.0), 1.0)
    return max(1, round(min(height, width) * (lo + (hi - lo) * math.sqrt(ratio))))


def initial_mask(boxes: Tensor, stride: int, height: int, width: int) -> Tensor:
    """The original's initial mask: 1 inside the union of ``boxes``, 0 elsewhere.

    Args:
        boxes (Tensor[P, 4]): boxes in image pixels (the regressed boxes of the positives).
        stride: image pixels per mask cell.

    Returns:
        Tensor[1, 1, ceil(height / stride), ceil(width / stride)] float.
    """
    mh, mw = math.ceil(height / stride), math.ceil(width / stride)
    mask = torch.zeros((1, 1, mh, mw), device=boxes.device)
    cells = boxes / stride
    for x1, y1, x2, y2 in cells.tolist():
        mask[..., int(math.floor(y1)):max(int(math.ceil(y2)), int(math.floor(y1)) + 1),
             int(math.floor(x1)):max(int(math.ceil(x2)), int(math.floor(x1)) + 1)] = 1.0
    return mask


def upsample_mask(mask: Tensor, height: int, width: int) -> Tensor:
    """Bilinear upsampling of a low-resolution mask ``Tensor[N, 1, h, w]`` to ``Tensor[N, 1, height, width]``.

    The mask grid is stretched over the image (cell centres stay aligned), so a mask of
    ``ceil(H / s)`` cells covers the image whatever the remainder of ``H / s``.
    """
    return F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)


def perturb(image: Tensor, mask: Tensor, baseline: Tensor) -> Tensor:
    """``Phi(I, M) = I * M + mu * (1 - M)``.

    Args:
        image (Tensor[1 or N, 3, H, W]): the image.
        mask (Tensor[N, 1, H, W]): values in [0, 1].
        baseline (Tensor[3, 1, 1] or Tensor[1 or N, 3, H, W]): mu, a colour or an image.

    Returns:
        Tensor[N, 3, H, W].
    """
    return image * mask + baseline * (1.0 - mask)


def total_variation(mask: Tensor, power: float = 3.0) -> Tensor:
    """``sum |dM/dx|^p + |dM/dy|^p`` per mask: ``Tensor[N, 1, h, w]`` -> ``Tensor[N]``."""
    dx = (mask[..., :, 1:] - mask[..., :, :-1]).abs().pow(power).flatten(1).sum(1)
    dy = (mask[..., 1:, :] - mask[..., :-1, :]).abs().pow(power).flatten(1).sum(1)
    return dx + dy
