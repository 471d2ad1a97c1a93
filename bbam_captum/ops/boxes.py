"""Box helpers. Boxes are ``(x1, y1, x2, y2)`` in pixels."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Validates boxes against an image and clips the parts that lie outside it.

    Args:
        boxes (Tensor[K, 4] or Tensor[4]): ``(x1, y1, x2, y2)`` in the image's pixels.
        height, width: the image's size.

    Returns:
        Tensor[K, 4] float: the boxes clipped to ``[0, width] x [0, height]``.

    Raises:
        TypeError: ``boxes`` is not a tensor.
        ValueError: wrong shape, non-finite values, ``x2 <= x1`` or ``y2 <= y1``, or a box
            entirely outside the image.
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(f"boxes must be a torch.Tensor of shape (K, 4) or (4,), got {type(boxes).__name__}")
    if boxes.dim() == 1:
        boxes = boxes.unsqueeze(0)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (K, 4) or (4,) as (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    if boxes.shape[0] == 0:
        raise ValueError("boxes is empty: give at least one box (K >= 1)")
    boxes = boxes.float()
    if not torch.isfinite(boxes).all():
        bad = (~torch.isfinite(boxes)).any(1).nonzero().flatten().tolist()
        raise ValueError(f"boxes must be finite; boxes at index {bad} hold NaN or inf")
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if degenerate.any():
        idx = degenerate.nonzero().flatten().tolist()
        raise ValueError(f"boxes must have x2 > x1 and y2 > y1; degenerate boxes at index {idx}: "
                         f"{boxes[degenerate].tolist()}")
    outside = (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= width) | (boxes[:, 1] >= height)
    if outside.any():
        idx = outside.nonzero().flatten().tolist()
        raise ValueError(f"boxes at index {idx} lie entirely outside the {width}x{height} image: "
                         f"{boxes[outside].tolist()}")
    limits = boxes.new_tensor([width, height, width, height])
    return torch.minimum(boxes.clamp(min=0), limits)


def jitter_boxes(boxes: Tensor, num: int, max_shift: float, height: int, width: int,
                 generator: torch.Generator | None = None) -> Tensor:
    """Random proposals around each box (Sec. 3.2 of the paper).

    Each coordinate moves by up to ``max_shift`` times the box's width (x) or height (y),
    uniformly; results are clipped to the image and kept non-degenerate.

    Args:
        boxes (Tensor[K, 4]): boxes to jitter.
        num: proposals per box.
        max_shift: largest shift as a fraction of the box side (0.3 in the paper).

    Returns:
        Tensor[K, num, 4]: proposals; index 0 of each box is the box itself.
    """
    k = boxes.shape[0]
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1.0)
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1.0)
    scale = torch.stack([w, h, w, h], dim=1)[:, None, :]  # [K, 1, 4]
    noise = torch.rand((k, num, 4), generator=generator, dtype=boxes.dtype) * 2 - 1  # [K, num, 4]
    noise[:, 0] = 0
    props = boxes[:, None, :] + noise.to(boxes.device) * max_shift * scale
    limits = boxes.new_tensor([width, height, width, height])
    props = torch.minimum(props.clamp(min=0), limits)
    # keep at least one pixel per side
    props[..., 2] = torch.maximum(props[..., 2], props[..., 0] + 1)
    props[..., 3] = torch.maximum(props[..., 3], props[..., 1] + 1)
    return props


def box_iou_pairwise(a: Tensor, b: Tensor) -> Tensor:
    """IoU of matching rows: ``a`` and ``b`` are Tensor[..., 4]; returns Tensor[...]."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter).clamp(min=1e-6)


def to_rois(boxes: Sequence[Tensor]) -> Tensor:
    """RoIs ``Tensor[R, 5]`` (batch index, x1, y1, x2, y2) from one ``Tensor[R_i, 4]`` per image
    (the layout of MMDetection's ``bbox2roi`` and torchvision's ``roi_align``; written here so that
    BBAM on a torchvision detector needs no MMDetection)."""
    return torch.cat([torch.cat([b.new_full((len(b), 1), float(i)), b[:, :4]], dim=1) for i, b in enumerate(boxes)])
