"""Input formatting and checks for BBAM (kept out of the method body, as in Captum)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..detectors.base import DetectorAdapter
from ..ops import to_rois


def format_image(inputs: Tensor, device: torch.device) -> Tensor:
    """One RGB image ``(3, H, W)`` or ``(1, 3, H, W)``, 0..255 -> ``Tensor[1, 3, H, W]`` float.

    A float image whose largest value lies in (0, 3] is refused: it looks like 0..1 or
    normalised pixels. uint8 images are taken as they are.
    """
    if isinstance(inputs, tuple) and len(inputs) == 1:  # Captum passes tuples of inputs
        inputs = inputs[0]
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor image (3, H, W) or (1, 3, H, W), got {type(inputs).__name__}")
    if inputs.dim() == 3:
        inputs = inputs.unsqueeze(0)
    if inputs.dim() != 4 or inputs.shape[0] != 1 or inputs.shape[1] != 3:
        raise ValueError("inputs must be one RGB image of shape (3, H, W) or (1, 3, H, W), "
                         f"got shape {tuple(inputs.shape)}")
    if inputs.shape[-1] < 2 or inputs.shape[-2] < 2:
        raise ValueError(f"inputs is too small: {tuple(inputs.shape[-2:])} pixels")
    image = inputs.detach().to(device=device, dtype=torch.float32)
    if not torch.isfinite(image).all():
        raise ValueError("inputs holds NaN or inf values")
    if inputs.dtype.is_floating_point:
        low, high = float(image.min()), float(image.max())
        # an image in 0..1 (or normalised) would be all but black to the detector: every box
        # falls back and the classes go wrong, so it is refused rather than explained
        if 0.0 < high <= 3.0:
            raise ValueError(f"inputs holds values in [{low:.3g}, {high:.3g}], which looks like a 0..1 or normalised "
                             "image; BBAM expects RGB pixel values 0..255 (multiply by 255, or pass uint8)")
    return image


def format_baselines(baselines: Tensor | Sequence[float] | None, default: Tensor, image: Tensor) -> Tensor:
    """mu as ``Tensor[3, 1, 1]`` (a colour) or ``Tensor[1, 3, H, W]`` (an image)."""
    if baselines is None:
        return default.to(image.device)
    mu = torch.as_tensor(baselines, dtype=torch.float32, device=image.device)
    if mu.shape == (3,):
        return mu.reshape(3, 1, 1)
    if mu.dim() == 3:
        mu = mu.unsqueeze(0)
    if mu.shape != image.shape:
        raise ValueError(f"baselines must be an RGB colour (3,) or an image of the input's shape "
                         f"{tuple(image.shape[1:])}, got shape {tuple(torch.as_tensor(baselines).shape)}")
    return mu


def format_target(target: int | Sequence[int] | Tensor | None, boxes: Tensor, image: Tensor,
                  adapter: DetectorAdapter) -> Tensor:
    """Class index per box, ``Tensor[K]`` long; None means the detector's top class for the box."""
    k = boxes.shape[0]
    if target is None:
        probs = adapter.roi_outputs(adapter.features(image), to_rois([boxes])).probs
        return probs[:, :-1].argmax(1)
    targets = torch.as_tensor(target, device=boxes.device)
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {targets.dtype}")
    targets = targets.long().flatten()
    if targets.numel() == 1:
        targets = targets.expand(k)
    if targets.numel() != k:
        raise ValueError(f"target must be one class index or one per box ({k}), got {targets.numel()}")
    bad = (targets < 0) | (targets >= adapter.num_classes)
    if bad.any():
        raise ValueError(f"target classes must lie in 0..{adapter.num_classes - 1} for this detector, "
                         f"got {targets[bad].tolist()}")
    return targets.clone()
