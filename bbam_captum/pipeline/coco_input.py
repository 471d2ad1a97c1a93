"""Reading boxes and classes from a COCO file (segmentations in it are ignored)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..synth.coco import decode_mask


@dataclass
class ImageItem:
    """One image's boxes to explain.

    Attributes:
        image_id, file_name, height, width: from the COCO ``images`` entry.
        boxes (np.ndarray[K, 4] float32): ``(x1, y1, x2, y2)``.
        classes (np.ndarray[K] int64): detector class index per box.
        ann_ids (np.ndarray[K] int64): COCO annotation id per box.
        failures: boxes left out, each ``{"ann_id", "reason"}``.
    """

    image_id: int
    file_name: str
    height: int
    width: int
    boxes: np.ndarray
    classes: np.ndarray
    ann_ids: np.ndarray
    failures: list[dict] = field(default_factory=list)


@dataclass
class CocoInput:
    path: Path
    categories: list[dict]
    class_of_category: dict[int, int]
    items: list[ImageItem]


def _require(condition: bool, message: str, path: Path) -> None:
    if not condition:
        raise ValueError(f"malformed COCO file {path}: {message}")


def read_coco(path: str | Path, class_names: tuple[str, ...]) -> CocoInput:
    """Reads a COCO instance file and maps its categories onto the detector's classes.

    Categories map by name when every category name is a detector class, otherwise by
    order of category id when there are as many categories as classes.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, missing keys or wrong types, or categories that match
            neither by name nor by count.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"malformed COCO file {path}: not valid JSON ({err})") from err
    _require(isinstance(data, dict), "the top level must be an object", path)
    for key in ("images", "annotations", "categories"):
        _require(isinstance(data.get(key), list), f"'{key}' must be a list", path)
    for img in data["images"]:
        _require(isinstance(img, dict) and all(k in img for k in ("id", "file_name", "height", "width")),
                 f"each image needs id, file_name, height and width; got {img!r}", path)
    for ann in data["annotations"]:
        _require(isinstance(ann, dict) and all(k in ann for k in ("id", "image_id", "category_id", "bbox")),
                 f"each annotation needs id, image_id, category_id and bbox; got {str(ann)[:200]}", path)
        _require(isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4,
                 f"annotation {ann['id']}: bbox must be [x, y, w, h], got {ann['bbox']!r}", path)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    names = [c.get("name") for c in categories]
    if names and all(n in class_names for n in names):
        class_of = {c["id"]: class_names.index(c["name"]) for c in categories}
    elif len(categories) == len(class_names):
        class_of = {c["id"]: i for i, c in enumerate(categories)}
    else:
        raise ValueError(f"the categories of {path} ({names}) match the detector's classes {list(class_names)} "
                         "neither by name nor by count")

    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    items = []
    for img in data["images"]:
        boxes, classes, ann_ids, failures = [], [], [], []
        for ann in by_image.get(img["id"], []):
            x, y, w, h = (float(v) for v in ann["bbox"])
            reason = None
            if ann["category_id"] not in class_of:
                reason = f"unknown category id {ann['category_id']}"
            elif not np.isfinite([x, y, w, h]).all() or w <= 0 or h <= 0:
                reason = f"degenerate box {ann['bbox']}"
            elif x >= img["width"] or y >= img["height"] or x + w <= 0 or y + h <= 0:
                reason = f"box {ann['bbox']} lies outside the {img['width']}x{img['height']} image"
            if reason:
                failures.append({"image_id": img["id"], "ann_id": ann["id"], "reason": reason})
                continue
            boxes.append([x, y, x + w, y + h])
            classes.append(class_of[ann["category_id"]])
            ann_ids.append(ann["id"])
        items.append(ImageItem(
            image_id=img["id"], file_name=img["file_name"], height=img["height"], width=img["width"],
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4), classes=np.asarray(classes, np.int64),
            ann_ids=np.asarray(ann_ids, np.int64), failures=failures))
    return CocoInput(path=path, categories=categories, class_of_category=class_of, items=items)


def load_coco_image(ann: dict, image_info: dict, img_dir: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                           torch.Tensor]:
    """One image of a COCO file with masks.

    Returns:
        image (Tensor[3, H, W] uint8 RGB), boxes (Tensor[K, 4] xyxy), labels (Tensor[K]
        0-based in category-id order), masks (Tensor[K, H, W] bool).
    """
    image = torch.from_numpy(np.array(Image.open(img_dir / image_info["file_name"]).convert("RGB"))).permute(2, 0, 1)
    cat_index = {c["id"]: i for i, c in enumerate(sorted(ann["categories"], key=lambda c: c["id"]))}
    objs = [a for a in ann["annotations"] if a["image_id"] == image_info["id"]]
    boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in objs], dtype=torch.float32).reshape(-1, 4)
    labels = torch.tensor([cat_index[a["category_id"]] for a in objs], dtype=torch.long)
    height, width = image.shape[-2:]
    masks = (torch.from_numpy(np.stack([decode_mask(a["segmentation"], height, width) for a in objs])) if objs
             else torch.zeros((0, *image.shape[-2:]), dtype=torch.bool))
    return image, boxes, labels, masks
