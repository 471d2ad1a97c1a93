"""Reading and writing data: image files, label PNGs, COCO files and their RLE masks (as
``torchvision.io`` reads images), and the layout of a run's output folder. The pipeline, the
metrics, the report and the synthetic world all use it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .coco import annotation_mask, decode_mask, encode_mask, load_coco_image, load_coco_json, validate_coco
    from .images import file_digest, read_image, read_label
    from .layout import RunLayout, label_name

__all__ = ["RunLayout", "annotation_mask", "decode_mask", "encode_mask", "file_digest", "label_name", "load_coco_image",
           "load_coco_json", "read_image", "read_label", "validate_coco"]
# lazy, so that reading a COCO file (the command line's input check) does not import torch
__getattr__ = lazy_attributes(__name__, {
    ".coco": ("annotation_mask", "decode_mask", "encode_mask", "load_coco_image", "load_coco_json", "validate_coco"),
    ".images": ("file_digest", "read_image", "read_label"), ".layout": ("RunLayout", "label_name"),
})
