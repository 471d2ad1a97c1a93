"""Reading and writing data: image files, COCO files and their RLE masks (as ``torchvision.io``
reads images). The pipeline, the metrics, the report and the synthetic world all use it."""
from .coco import decode_mask, encode_mask, load_coco_image, load_coco_json, validate_coco
from .images import file_digest, read_image

__all__ = ["decode_mask", "encode_mask", "file_digest", "load_coco_image", "load_coco_json", "read_image",
           "validate_coco"]
