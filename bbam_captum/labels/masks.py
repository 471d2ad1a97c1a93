"""Instance pseudo masks from BBAM maps."""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.transforms.functional import gaussian_blur


def instance_masks(maps: Tensor, boxes: Tensor, threshold: float) -> Tensor:
    """Pixels of each map above ``threshold``, kept inside the map's box.

    Args:
        maps (Tensor[K, 1, H, W] or Tensor[K, H, W]): BBAM maps in [0, 1].
        boxes (Tensor[K, 4]): ``(x1, y1, x2, y2)`` in pixels.
        threshold: theta.

    Returns:
        Tensor[K, H, W] bool.
    """
    if maps.dim() == 4:
        maps = maps[:, 0]
    if maps.shape[0] != boxes.shape[0]:
        raise ValueError(f"one box per map expected: {maps.shape[0]} maps, {boxes.shape[0]} boxes")
    height, width = maps.shape[-2:]
    ys = torch.arange(height, device=maps.device).view(1, -1, 1) + 0.5
    xs = torch.arange(width, device=maps.device).view(1, 1, -1) + 0.5
    b = boxes.to(maps.device).float()
    inside = ((xs >= b[:, 0, None, None]) & (xs <= b[:, 2, None, None])
              & (ys >= b[:, 1, None, None]) & (ys <= b[:, 3, None, None]))  # [K, H, W]
    return (maps > threshold) & inside


def smooth_maps(maps: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of each map (the original blurred its maps before thresholding).

    Args:
        maps (Tensor[K, 1, H, W]): BBAM maps.
        sigma: standard deviation in pixels; 0 returns the maps unchanged.

    Returns:
        Tensor[K, 1, H, W].
    """
    if sigma <= 0 or maps.shape[0] == 0:
        return maps
    size = 2 * int(3 * sigma) + 1
    # the Gaussian is separable: a row pass and a column pass cost 2k, not k^2, per pixel (k up to
    # 385 at 800 px), with the same kernel and the same reflected borders
    # reflected borders need the kernel's half inside the map: on a map narrower than the
    # kernel the Gaussian is cut there (it leaves maps of 3 sigma or more unchanged)
    size_x, size_y = (min(size, 2 * side - 1) for side in (maps.shape[-1], maps.shape[-2]))
    rows = gaussian_blur(maps, kernel_size=[size_x, 1], sigma=[sigma, sigma])
    return gaussian_blur(rows, kernel_size=[1, size_y], sigma=[sigma, sigma])
