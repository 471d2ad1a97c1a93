"""Reading boxes and classes from a COCO file (segmentations in it are ignored)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..synth.coco import decode_mask


@dataclass
class ImageItem:
    """One image's boxes to explain.

    Attributes:
        image_id, file_name, height, width: from the COCO ``images`` entry.
        boxes (np.ndarray[K, 4] float32): ``(x1, y1, x2, y2)``, clipped to the image.
        classes (np.ndarray[K] int64): detector class index per box.
        ann_ids (np.ndarray[K] int64): COCO annotation id per box.
        failures: boxes left out, each ``{"image_id", "ann_id", "reason"}``.
        ignore_boxes (np.ndarray[F, 4] float32): the parts inside the image of boxes left
            out, which the semantic labels mark as ignore rather than background.
    """

    image_id: int
    file_name: str
    height: int
    width: int
    boxes: np.ndarray
    classes: np.ndarray
    ann_ids: np.ndarray
    failures: list[dict] = field(default_factory=list)
    ignore_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


@dataclass
class CocoInput:
    """A validated COCO file. ``failures`` holds the annotations that belong to no listed image."""

    path: Path
    categories: list[dict]
    class_of_category: dict[int, int]
    items: list[ImageItem]
    failures: list[dict] = field(default_factory=list)


MAX_SIDE = 100_000  # larger images are a typo far more often than a real image
_INT64 = 2 ** 63
MAX_LISTED = 20  # problems listed in one message


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value < _INT64


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _where(section: str, index: int, entry: object) -> str:
    label = f" (id {entry['id']!r})" if isinstance(entry, dict) and "id" in entry else ""
    return f"{section}[{index}]{label}"


def _check_ids(section: str, entries: list, problems: list[str]) -> None:
    """Every entry is an object with a unique integer ``id``."""
    first_at: dict[int, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"{section}[{i}]: must be an object, got {type(entry).__name__}")
        elif not _is_int(entry.get("id")):
            problems.append(f"{_where(section, i, entry)}: 'id' must be an integer, got {entry.get('id')!r}")
        elif entry["id"] in first_at:
            problems.append(f"{section}[{i}]: duplicate id {entry['id']} (also {section}[{first_at[entry['id']]}])")
        else:
            first_at[entry["id"]] = i


def validate_coco(data: object, need_masks: bool = False) -> list[str]:
    """Every structural problem of a COCO instance file, each with its location.

    Checked: the three lists, unique integer ids, ``file_name`` (a non-empty string),
    ``height``/``width`` (integers in 1..MAX_SIDE), integer ``image_id``/``category_id``,
    ``bbox`` (four numbers) and, with ``need_masks``, a ``segmentation`` (RLE object or
    polygon list) on every annotation. Values that make one box unusable (NaN, a
    degenerate or outside box, an unknown category or image) are not problems of the
    file: :func:`read_coco` records them per box.
    """
    if not isinstance(data, dict):
        return [f"the top level must be an object with 'images', 'annotations' and 'categories', "
                f"got {type(data).__name__}"]
    problems = [f"'{key}' must be a list, got {type(data.get(key)).__name__}"
                for key in ("images", "annotations", "categories") if not isinstance(data.get(key), list)]
    if problems:
        return problems
    for section in ("categories", "images", "annotations"):
        _check_ids(section, data[section], problems)
    for i, cat in enumerate(data["categories"]):
        if isinstance(cat, dict) and "name" in cat and not isinstance(cat["name"], str):
            problems.append(f"{_where('categories', i, cat)}: 'name' must be a string, got {cat['name']!r}")
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict):
            continue
        name = img.get("file_name")
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            problems.append(f"{_where('images', i, img)}: 'file_name' must be a non-empty string, got {name!r}")
        for key in ("height", "width"):
            if not (_is_int(img.get(key)) and 1 <= img[key] <= MAX_SIDE):
                problems.append(f"{_where('images', i, img)}: '{key}' must be an integer in 1..{MAX_SIDE}, "
                                f"got {img.get(key)!r}")
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            continue
        for key in ("image_id", "category_id"):
            if not _is_int(ann.get(key)):
                problems.append(f"{_where('annotations', i, ann)}: '{key}' must be an integer, got {ann.get(key)!r}")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            problems.append(f"{_where('annotations', i, ann)}: 'bbox' must be [x, y, width, height] (four numbers), "
                            f"got {str(bbox)[:80]}")
        if need_masks and not isinstance(ann.get("segmentation"), (dict, list)):
            problems.append(f"{_where('annotations', i, ann)}: no mask: 'segmentation' must be an RLE object or a "
                            f"polygon list, got {str(ann.get('segmentation'))[:80]}")
    return problems


def load_coco_json(path: str | Path, need_masks: bool = False) -> dict:
    """A COCO file's content, validated by :func:`validate_coco`.

    Raises:
        InputError: missing or unreadable file, not JSON, or any structural problem (all
            of them are listed, up to ``MAX_LISTED``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"COCO file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise InputError(f"malformed COCO file {path}: not valid JSON ({err})") from err
    except OSError as err:
        raise InputError(f"cannot read COCO file {path}: {err}") from err
    problems = validate_coco(data, need_masks)
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise InputError(f"malformed COCO file {path}: {len(problems)} problem(s):\n  {listed}{more}")
    return data


def _category_classes(categories: list[dict], class_names: tuple[str, ...], path: Path) -> dict[int, int]:
    """Categories map by name when every category name is a detector class, otherwise by
    order of category id when there are as many categories as classes."""
    names = [c.get("name") for c in categories]
    if names and all(n in class_names for n in names):
        return {c["id"]: class_names.index(c["name"]) for c in categories}
    if len(categories) == len(class_names):
        return {c["id"]: i for i, c in enumerate(categories)}
    raise InputError(f"the categories of {path} ({names}) match the detector's classes {list(class_names)} "
                     "neither by name nor by count")


def _box_problem(bbox: list, img: dict, known_category: bool, category_id: int) -> str | None:
    x, y, w, h = (float(v) for v in bbox)
    if not np.isfinite([x, y, w, h]).all() or w <= 0 or h <= 0:
        return f"degenerate box {bbox}"
    if x >= img["width"] or y >= img["height"] or x + w <= 0 or y + h <= 0:
        return f"box {bbox} lies outside the {img['width']}x{img['height']} image"
    if not known_category:
        return f"unknown category id {category_id}"
    return None


def _clipped_xyxy(bbox: list, img: dict) -> list[float]:
    x, y, w, h = (float(v) for v in bbox)
    return [max(x, 0.0), max(y, 0.0), min(x + w, float(img["width"])), min(y + h, float(img["height"]))]


def read_coco(path: str | Path, class_names: tuple[str, ...]) -> CocoInput:
    """Reads a COCO instance file and maps its categories onto the detector's classes.

    The whole file is validated first (:func:`validate_coco`). Boxes that cannot be
    explained (degenerate, outside their image, unknown category, or of an image id not
    in ``images``) are recorded with their reason; the others are clipped to their image.

    Raises:
        InputError: missing file, not JSON, structural problems, or categories that
            match neither by name nor by count.
    """
    path = Path(path)
    data = load_coco_json(path)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    class_of = _category_classes(categories, class_names, path)
    image_ids = {img["id"] for img in data["images"]}
    by_image: dict[int, list[dict]] = {}
    dangling = []
    for ann in data["annotations"]:
        if ann["image_id"] in image_ids:
            by_image.setdefault(ann["image_id"], []).append(ann)
        else:
            dangling.append({"image_id": ann["image_id"], "ann_id": ann["id"],
                             "reason": f"image id {ann['image_id']} is not in 'images'"})
    items = []
    for img in data["images"]:
        boxes, classes, ann_ids, failures, ignore = [], [], [], [], []
        for ann in by_image.get(img["id"], []):
            known = ann["category_id"] in class_of
            reason = _box_problem(ann["bbox"], img, known, ann["category_id"])
            if reason:
                failures.append({"image_id": img["id"], "ann_id": ann["id"], "reason": reason})
                if not known and reason.startswith("unknown"):  # a real object of some class: not background
                    ignore.append(_clipped_xyxy(ann["bbox"], img))
                continue
            boxes.append(_clipped_xyxy(ann["bbox"], img))
            classes.append(class_of[ann["category_id"]])
            ann_ids.append(ann["id"])
        items.append(ImageItem(
            image_id=img["id"], file_name=img["file_name"], height=img["height"], width=img["width"],
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4), classes=np.asarray(classes, np.int64),
            ann_ids=np.asarray(ann_ids, np.int64), failures=failures,
            ignore_boxes=np.asarray(ignore, np.float32).reshape(-1, 4)))
    return CocoInput(path=path, categories=categories, class_of_category=class_of, items=items, failures=dangling)


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
