"""The original implementation's recipe that the speed benchmarks compare ours with: its settings and
its habits on top of a detector, kept apart so that the harnesses that only time
(``benchmarks.speed_real`` on a GPU machine) need nothing beyond the library."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from torch import Tensor

from bbam_captum import BBAMSettings
from bbam_captum.detectors import MMDetTwoStageAdapter, TorchvisionRCNNAdapter
from bbam_captum.detectors.base import Crop

# The original implementation's recipe: 300 Adam steps at lr 0.02, up to 100 positives, no
# early stop, the whole image (with a reference adapter: weight gradients, the RPN every step)
REFERENCE = BBAMSettings(steps=300, lr=0.02, max_positives=100, early_stop_patience=None, context=None)
OURS = BBAMSettings()


@contextmanager
def weights_with_gradients(model: torch.nn.Module) -> Iterator[None]:
    """The original's ``frozen``: eval mode, but the weights keep requiring gradients (and get
    them); the gradients are dropped and the mode restored on exit."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


class _OriginalHabits:
    """The original's wasteful habits on top of an adapter: weights keep requiring gradients (and
    get them), and the RPN runs on every forward (``run_rpn``), its output discarded."""

    model: torch.nn.Module

    def frozen(self) -> AbstractContextManager[None]:
        return weights_with_gradients(self.model)

    def features(self, images: Tensor, crops: Sequence[Crop] | None = None) -> Any:
        features = super().features(images, crops)  # type: ignore[misc]  # the adapter's, after this mixin
        self.run_rpn(features)
        return features

    def run_rpn(self, features: Any) -> None:
        raise NotImplementedError


class MMDetReferenceAdapter(_OriginalHabits, MMDetTwoStageAdapter):
    """An MMDetection two-stage detector with the original's habits."""

    def run_rpn(self, features: Any) -> None:
        self.model.rpn_head(features.maps)


class TorchvisionReferenceAdapter(_OriginalHabits, TorchvisionRCNNAdapter):
    """A torchvision Faster R-CNN with the original's habits."""

    def run_rpn(self, features: Any) -> None:
        self.model.rpn.head(list(features.maps.values()))
