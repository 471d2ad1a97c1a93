"""COCO files: RLE masks, loading and validating instance files, and one image of a file with masks."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pycocotools.mask as mask_utils

from ..errors import InputError

if TYPE_CHECKING:
    import torch


def encode_mask(mask: np.ndarray) -> dict:
    """COCO RLE of a (H, W) bool mask, with ``counts`` as str so that it is JSON."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_mask(segmentation: dict | list, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (compressed or uncompressed RLE, or polygons) as an (H, W) bool mask.

    Raises:
        ValueError: a segmentation pycocotools cannot decode, or an RLE of another size than
            ``height x width``.
    """
    try:
        if isinstance(segmentation, list):  # polygons
            rles = mask_utils.frPyObjects(segmentation, height, width)
            mask = mask_utils.decode(mask_utils.merge(rles))
        else:
            if isinstance(segmentation.get("counts"), list):  # uncompressed RLE
                segmentation = mask_utils.frPyObjects(segmentation, height, width)
            mask = mask_utils.decode(segmentation)
    except Exception as err:  # pycocotools raises bare Exceptions (and Key-, Type-, AttributeErrors) on bad input
        raise ValueError(f"cannot decode the segmentation: {type(err).__name__}: {err}") from err
    if mask.shape != (height, width):
        raise ValueError(f"the segmentation is {mask.shape[1]}x{mask.shape[0]}, its image {width}x{height}")
    return mask.astype(bool)


def annotation_mask(annotation: dict, height: int, width: int, source: Path | str) -> np.ndarray:
    """:func:`decode_mask` of a COCO annotation's ``segmentation``; its ValueError names ``source``
    (the file the annotation came from) and the annotation's id."""
    try:
        return decode_mask(annotation.get("segmentation"), height, width)
    except ValueError as err:
        raise ValueError(f"{source}: annotation {annotation.get('id')}: {err}") from err


MAX_SIDE = 100_000  # larger images are a typo far more often than a real image
_INT64 = 2 ** 63
MAX_LISTED = 20  # problems listed in one message


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value < _INT64


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    return _is_number(value) and (isinstance(value, int) or math.isfinite(value))


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
    ``bbox`` (four numbers), ``iscrowd`` (0 or 1) and ``area`` (finite, >= 0) where given
    and, with ``need_masks``, a ``segmentation`` (RLE object or
    polygon list) on every annotation. Values that make one box unusable (NaN, a
    degenerate or outside box, an unknown category or image) are not problems of the
    file: :func:`bbam_captum.pipeline.read_coco` records them per box.
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
        if "iscrowd" in ann and not (_is_int(ann["iscrowd"]) and ann["iscrowd"] in (0, 1)):
            problems.append(f"{_where('annotations', i, ann)}: 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
        area = ann.get("area")
        if area is not None and not (_is_finite(area) and area >= 0):
            problems.append(f"{_where('annotations', i, ann)}: 'area' must be a finite number >= 0, got {area!r}")
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


def load_coco_image(ann: dict, image_info: dict, img_dir: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                           torch.Tensor]:
    """One image of a COCO file with masks.

    Returns:
        image (Tensor[3, H, W] uint8 RGB), boxes (Tensor[K, 4] xyxy), labels (Tensor[K]
        0-based in category-id order), masks (Tensor[K, H, W] bool).
    """
    import torch  # here, so that reading and checking a COCO file (the command line's input check) needs none

    from .images import read_image

    image = read_image(img_dir / image_info["file_name"])
    cat_index = {c["id"]: i for i, c in enumerate(sorted(ann["categories"], key=lambda c: c["id"]))}
    objs = [a for a in ann["annotations"] if a["image_id"] == image_info["id"]]
    boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in objs], dtype=torch.float32).reshape(-1, 4)
    labels = torch.tensor([cat_index[a["category_id"]] for a in objs], dtype=torch.long)
    height, width = image.shape[-2:]
    masks = (torch.from_numpy(np.stack([decode_mask(a["segmentation"], height, width) for a in objs])) if objs
             else torch.zeros((0, *image.shape[-2:]), dtype=torch.bool))
    return image, boxes, labels, masks
