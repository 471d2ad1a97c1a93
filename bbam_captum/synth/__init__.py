"""The synthetic world: images with true masks, written as COCO datasets."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .coco import write_dataset
    from .world import CLASSES, WORLDS, WorldConfig, draw_image

__all__ = ["CLASSES", "WORLDS", "WorldConfig", "draw_image", "write_dataset"]
# lazy, so that the command line's parser reads the worlds without the COCO writer's imports
__getattr__ = lazy_attributes(__name__, {".coco": ("write_dataset",),
                                         ".world": ("CLASSES", "WORLDS", "WorldConfig", "draw_image")})
