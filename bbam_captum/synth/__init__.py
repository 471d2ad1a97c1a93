"""The synthetic world: images with true masks, written as COCO datasets."""
from .coco import write_dataset
from .world import CLASSES, WORLDS, WorldConfig, draw_image

__all__ = ["CLASSES", "WORLDS", "WorldConfig", "draw_image", "write_dataset"]
