"""Attribution methods: BBAM, and Grad-CAM for boxes as its baseline."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .bbam import BBAM, BoxRecord
    from .gradcam import BoxGradCAM
    from .settings import BBAMSettings

__all__ = ["BBAM", "BBAMSettings", "BoxGradCAM", "BoxRecord"]
# lazy, so that the settings (no torch) load alone: the command line reads their defaults for --help
__getattr__ = lazy_attributes(__name__, {".bbam": ("BBAM", "BoxRecord"), ".gradcam": ("BoxGradCAM",),
                                         ".settings": ("BBAMSettings",)})
