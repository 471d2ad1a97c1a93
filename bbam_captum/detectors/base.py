"""What BBAM needs from a detector: the interface every detector adapter offers."""
from __future__ import annotations

from dataclasses import dataclass
from contextlib import AbstractContextManager, contextmanager
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class RoIOutputs:
    """The second stage's outputs for a set of proposals.

    Attributes:
        probs (Tensor[R, C + 1]): softmax class probabilities; column C is background.
        deltas (Tensor[R, C, 4]): class-specific box regression: the deltas that the
            adapter's ``decode`` turns into the box regressed from each RoI (the head's own
            deltas, or, for heads that give boxes, those boxes encoded relative to the RoI).
    """

    probs: Tensor
    deltas: Tensor


class UnsupportedDetectorError(TypeError):
    """A detector that BBAM cannot explain, or whose configuration an adapter cannot read;
    raised when the adapter is made, with what it met and why."""


@dataclass(frozen=True)
class Crop:
    """A window of the detector's input (after its resizing), in input pixels."""

    left: int
    top: int
    width: int
    height: int


def crop_windows(inputs: Tensor, crops: Sequence[Crop], pad_value: float = 0.0) -> Tensor:
    """Each input of a batch cut to its crop, padded at the bottom and right with ``pad_value``
    to the largest crop's height and width, as a detector pads a batch of images.

    Args:
        inputs (Tensor[N, C, H, W]): the detector's inputs, already padded to take every crop.
        crops (sequence of N Crop): each input's window.
        pad_value (float, optional): what padded pixels hold. Default: 0.0

    Returns:
        Tensor[N, C, max height, max width].
    """
    if len(crops) != inputs.shape[0]:
        raise ValueError(f"expected one crop per input ({inputs.shape[0]}), got {len(crops)}")
    height, width = max(c.height for c in crops), max(c.width for c in crops)
    return torch.stack([F.pad(x[:, c.top:c.top + c.height, c.left:c.left + c.width],
                              (0, width - c.width, 0, height - c.height), value=pad_value)
                        for x, c in zip(inputs, crops)])


@dataclass
class Detections:
    """The detector's own detections on one image, in the image's pixels.

    Attributes:
        boxes (Tensor[D, 4]), scores (Tensor[D]), labels (Tensor[D] long).
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor


class DetectorAdapter(Protocol):
    """A two-stage detector seen as tensors in, tensors out.

    Images are ``Tensor[N, 3, H, W]`` RGB with values 0..255; boxes are in the image's
    pixels. Adapters apply the detector's own preprocessing (channel order, mean, std,
    resizing, padding) so that gradients reach the raw pixels.
    """

    num_classes: int
    class_names: tuple[str, ...]

    def pixel_mean(self) -> Tensor:
        """The default perturbation colour mu, Tensor[3, 1, 1] RGB 0..255."""

    def crop(self, window: Tensor, height: int, width: int) -> Crop:
        """The crop of the detector's input that covers ``window`` (Tensor[4], image pixels)
        of an image of ``height`` x ``width``, aligned so that cropping does not shift the
        features. An adapter that cannot crop returns the whole input."""

    def features(self, images: Tensor, crops: Sequence[Crop] | None = None) -> object:
        """Backbone (and neck) features of a batch of images, opaque to the caller; with
        ``crops`` (one per image) each image is cropped first (crops of several sizes padded
        to the largest, see :func:`crop_windows`), and :meth:`roi_outputs` still takes RoIs in
        the full image's pixels."""

    def roi_outputs(self, features: object, rois: Tensor) -> RoIOutputs:
        """Second-stage outputs for ``rois`` (Tensor[R, 5]: batch index, x1, y1, x2, y2)."""

    def decode(self, proposals: Tensor, deltas: Tensor, height: int, width: int) -> Tensor:
        """Boxes (Tensor[R, 4]) regressed from ``proposals`` (Tensor[R, 4]) by ``deltas`` (Tensor[R, 4])."""

    def detect(self, image: Tensor, score_thr: float) -> Detections:
        """The full detector (RPN included) on one image Tensor[3, H, W]."""

    def preprocess(self, images: Tensor) -> tuple[Tensor, tuple[float, float]]:
        """The detector's input (normalised, resized, padded) of ``images`` and the (x, y) factor of
        its resizing. Used by :class:`~bbam_captum.BoxGradCAM` only."""

    def gradcam_layer(self, box: Tensor, height: int, width: int) -> torch.nn.Module:
        """The feature layer that the RoI head reads ``box`` (Tensor[4], image pixels) from, in an
        image of ``height`` x ``width``. Used by :class:`~bbam_captum.BoxGradCAM` only."""

    def frozen(self) -> AbstractContextManager[None]:
        """A context in which the detector is in eval mode and its weights need no gradients."""


@contextmanager
def frozen_model(model: torch.nn.Module) -> Iterator[None]:
    """``model`` in eval mode with no weight gradients; both restored on exit (what every adapter's
    :meth:`DetectorAdapter.frozen` gives)."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
