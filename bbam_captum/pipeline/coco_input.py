"""Reading boxes and classes from a COCO file (segmentations in it are ignored)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.coco import load_coco_json


class CategoryMismatchError(InputError):
    """COCO categories that do not match the detector's classes by name. Where their counts agree
    (``pairable``) the message says how to ask for the pairing by order of category id, in the words
    of whoever raises it last (:meth:`asking_for`): ``read_coco``'s argument, ``generate_labels``'s,
    the command line's option."""

    def __init__(self, problem: str, pairable: bool, ask: str = "by_order=True") -> None:
        self.problem, self.pairable = problem, pairable
        super().__init__(f"{problem}; to pair them by order of category id instead, pass {ask}" if pairable
                         else problem)

    def asking_for(self, ask: str) -> CategoryMismatchError:
        """The same error, its hint naming ``ask`` (e.g. ``"--categories-by-order"``)."""
        return CategoryMismatchError(self.problem, self.pairable, ask)


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
            out and of crowd regions, which the semantic labels mark as ignore rather than
            background.
        crowds: the ``iscrowd: 1`` annotations (not explained), each ``{"id", "category_id",
            "bbox"}`` with its box ``[x, y, w, h]`` clipped to the image; ``instances.json``
            keeps them as crowd regions, which MMDetection ignores in training.
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
    crowds: list[dict] = field(default_factory=list)


@dataclass
class CocoInput:
    """A validated COCO file. ``failures`` holds the annotations that belong to no listed image."""

    path: Path
    categories: list[dict]
    class_of_category: dict[int, int]
    items: list[ImageItem]
    failures: list[dict] = field(default_factory=list)


def _category_classes(categories: list[dict], class_names: tuple[str, ...], path: Path,
                      by_order: bool) -> dict[int, int]:
    """Categories map by name when every category name is a detector class; by order of category
    id only when asked (``by_order``) and the counts agree: a silent mapping by position would
    label every box with whatever class happens to sit at its index."""
    names = [c.get("name") for c in categories]
    _check_unique_names(categories, path)
    if names and all(n in class_names for n in names):
        return {c["id"]: class_names.index(c["name"]) for c in categories}
    if by_order and len(categories) == len(class_names):
        return {c["id"]: i for i, c in enumerate(categories)}
    unknown = [n for n in names if n not in class_names]
    problem = (f"the categories of {path} do not match the detector's classes by name: {unknown[:10]} are not among "
               f"{list(class_names)[:20]}")
    if len(categories) != len(class_names):
        raise CategoryMismatchError(f"{problem}; there are {len(categories)} categories and {len(class_names)} "
                                    "classes, so they cannot be paired by order either", pairable=False)
    raise CategoryMismatchError(problem, pairable=True)


def _check_unique_names(categories: list[dict], path: Path) -> None:
    """Category names pair categories with the detector's classes and name them in the written
    configs: two categories of one name would take one class and list it twice."""
    first: dict[object, int] = {}
    for c in categories:
        name = c.get("name")
        if name in first and name is not None:
            raise InputError(f"{path}: categories {first[name]} and {c['id']} share the name {name!r}; "
                             "category names must be unique")
        first.setdefault(name, c["id"])


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


def read_coco(path: str | Path, class_names: tuple[str, ...], by_order: bool = False) -> CocoInput:
    """Reads a COCO instance file and maps its categories onto the detector's classes: by name, or
    with ``by_order`` by order of category id where the names differ but the counts agree.

    The whole file is validated first (:func:`bbam_captum.io.validate_coco`). Boxes that cannot be
    explained (degenerate, outside their image, unknown category, or of an image id not
    in ``images``) are recorded with their reason; the others are clipped to their image.
    ``iscrowd: 1`` boxes become crowd regions (:attr:`ImageItem.crowds`), not boxes to explain.

    Raises:
        InputError: missing file, not JSON, structural problems.
        CategoryMismatchError: categories that do not match the classes by name (nor, with
            ``by_order``, by count); an ``InputError``.
    """
    path = Path(path)
    data = load_coco_json(path)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    class_of = _category_classes(categories, class_names, path, by_order)
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
        boxes, classes, ann_ids, failures, ignore, crowds = [], [], [], [], [], []
        for ann in by_image.get(img["id"], []):
            known = ann["category_id"] in class_of
            reason = _box_problem(ann["bbox"], img, known, ann["category_id"])
            if reason is None and ann.get("iscrowd") == 1:  # a crowd region: ignored, not an object to explain
                x1, y1, x2, y2 = _clipped_xyxy(ann["bbox"], img)
                crowds.append({"id": ann["id"], "category_id": ann["category_id"], "bbox": [x1, y1, x2 - x1, y2 - y1]})
                ignore.append([x1, y1, x2, y2])
                continue
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
            ignore_boxes=np.asarray(ignore, np.float32).reshape(-1, 4), crowds=crowds))
    return CocoInput(path=path, categories=categories, class_of_category=class_of, items=items, failures=dangling)
