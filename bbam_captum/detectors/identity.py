"""What identifies a detector in the maps' keys: one digest, however the detector was loaded or wrapped."""
from __future__ import annotations

import hashlib
import json

import torch

from .adapt import as_adapter
from .base import DetectorAdapter


def detector_digest(model: torch.nn.Module | DetectorAdapter | object) -> str:
    """A hash of what of a detector shapes BBAM's maps: the adapter's kind, the class names,
    the model's architecture (its ``repr``, with the preprocessing that torchvision prints),
    its weights and buffers, and the config an MMDetection model carries (``model.cfg``: the
    test pipeline and data preprocessor that the adapter applies).

    It depends on the detector only, not on how it was given: the same config and checkpoint
    loaded by ``bbam-captum generate`` or by :func:`~bbam_captum.load_detector`, the model or
    its adapter or a :class:`~bbam_captum.BBAM` around it, give one digest, so that each reuses
    the other's maps; other weights give another.

    Args:
        model: a detector BBAM accepts, its adapter, or an attribution that holds one as
            ``adapter`` (``BBAM``, ``BoxGradCAM``).

    Returns:
        ``"model:"`` and a sha256 (hex).
    """
    if not isinstance(model, torch.nn.Module) and hasattr(model, "adapter"):  # an attribution method
        model = model.adapter
    adapter = as_adapter(model, "detector_digest")
    module = getattr(adapter, "model", None)
    h = hashlib.sha256(type(adapter).__name__.encode())
    h.update(repr(tuple(adapter.class_names)).encode())
    if isinstance(module, torch.nn.Module):
        h.update(repr(module).encode())
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(str((tuple(tensor.shape), tensor.dtype)).encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        cfg = getattr(module, "cfg", None)
        if cfg is not None:  # an mmengine Config; sorted, so that key order does not count
            h.update(json.dumps(cfg.to_dict(), sort_keys=True, default=repr).encode())
    return "model:" + h.hexdigest()
