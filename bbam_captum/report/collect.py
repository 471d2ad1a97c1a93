"""One row per box of a ``generate`` run: what BBAM recorded, mask statistics, thumbnails.

Each image's rows and thumbnails are cached under ``OUT/report/cache/`` keyed by a hash of
everything they are drawn from (maps file, label PNG, pseudo and true masks, image file,
drawing version), so a report is remade for the images whose inputs changed only.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import InputError
from ..io.coco import annotation_mask, decode_mask, load_coco_json
from ..io.images import file_digest, read_image, read_label
from ..io.layout import RunLayout
from ..metrics import mask_iou
from ..metrics.pseudo_labels import check_image_content
from ..pipeline.generate import read_maps_file, recorded_image_digests
from ..utils.atomic import write_json_atomic
from .thumbs import RENDER_VERSION, box_view, label_view, overview, save_png


@dataclass
class RunInputs:
    """What a report reads from a ``generate`` run (and, optionally, the true masks).

    Attributes:
        layout: the paths of the run's output folder.
        img_dir: the folder of its images.
        class_names: the detector's classes (index = class in the maps files).
        images: the COCO ``images`` entries of ``OUT/coco/instances.json``.
        pseudo: pseudo annotations by image id.
        truth: true annotations by annotation id (empty without ``--gt``).
        gt: the COCO file they come from (None without ``--gt``).
        images_unchecked: images of ``gt`` whose content could not be compared with those the
            maps were made from (no file found, or no record).
        palette: RGB per semantic label value (0 background, class + 1).
    """

    layout: RunLayout
    img_dir: Path
    class_names: list[str]
    images: list[dict]
    pseudo: dict[int, list[dict]]
    truth: dict[int, dict] = field(default_factory=dict)
    gt: Path | None = None
    images_unchecked: int = 0
    palette: list[list[int]] = field(default_factory=list)


def _is_rgb(colour: object) -> bool:
    return (isinstance(colour, list) and len(colour) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in colour))


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise InputError(f"{path} not found: {what}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err})") from err


def read_run(out: Path, gt: Path | None = None, gt_img_dir: Path | None = None) -> RunInputs:
    """Reads a run's settings, pseudo masks and palette (and the true masks of ``gt``, whose images
    lie in ``gt_img_dir``; see :func:`~bbam_captum.metrics.pseudo_labels.gt_image_folder`).

    Raises:
        InputError: ``out`` is not a finished ``generate`` run, ``gt`` is missing, unreadable
            files, or a ``gt`` that shares no annotation id with the run or whose image files
            differ in content from those the maps were made from.
    """
    layout = RunLayout(out)
    hint = f"is {out} the output folder of 'bbam-captum generate'?"
    run = _read_json(layout.run_file, hint)
    if not layout.coco_instances.is_file():
        raise InputError(f"{layout.coco_instances} not found: {hint}")
    instances = load_coco_json(layout.coco_instances)  # a hand-edited file is checked as any COCO file
    classes = _read_json(layout.seg_classes, hint)
    for path, content in ((layout.run_file, run), (layout.seg_classes, classes)):
        if not isinstance(content, dict):
            raise InputError(f"{path} must hold a JSON object, got {type(content).__name__}; {hint}")
    for key in ("img_dir", "class_names"):
        if key not in run:
            raise InputError(f"{layout.run_file} has no '{key}'; {hint}")
    palette = classes.get("palette", [[0, 0, 0]])
    if not (isinstance(palette, list) and palette and all(_is_rgb(c) for c in palette)):
        raise InputError(f"{layout.seg_classes}: 'palette' must be a list of [r, g, b] (0..255), "
                         f"got {str(palette)[:80]}")
    pseudo: dict[int, list[dict]] = defaultdict(list)
    for ann in instances.get("annotations", []):
        pseudo[ann["image_id"]].append(ann)
    inputs = RunInputs(layout=layout, img_dir=Path(run["img_dir"]), class_names=list(run["class_names"]),
                       images=sorted(instances.get("images", []), key=lambda i: i["id"]), pseudo=dict(pseudo),
                       palette=palette)
    if gt is not None:
        truth = _read_json(gt, "the gt file with the true masks")
        if not (isinstance(truth, dict) and all(isinstance(truth.get(k, []), list) for k in ("images", "annotations"))):
            raise InputError(f"gt {gt} is not a COCO file: an object with the lists 'images' and 'annotations'")
        inputs.gt, inputs.truth = gt, {a["id"]: a for a in truth.get("annotations", [])
                        if isinstance(a, dict) and "segmentation" in a and "id" in a}
        ours = {a["id"] for anns in pseudo.values() for a in anns}
        listed = [i for i in truth.get("images", []) if isinstance(i, dict) and {"id", "file_name"} <= i.keys()
                  and isinstance(i["file_name"], str)]
        # masks of other pictures would mislead
        inputs.images_unchecked = check_image_content(recorded_image_digests(out), listed, gt, gt_img_dir)
        if ours and not ours & inputs.truth.keys():
            raise InputError(f"{gt} has no masks for any annotation id of {layout.coco_instances}: "
                             "pass the COCO file the boxes came from, with its true masks")
    return inputs


def _digest(*parts: bytes) -> str:
    h = hashlib.sha1(f"render-{RENDER_VERSION}".encode())
    for part in parts:
        h.update(hashlib.sha1(part).digest())
    return h.hexdigest()[:16]


def file_digest_or_none(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def _file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b"<missing>"


def image_key(inputs: RunInputs, info: dict) -> str:
    """Hash of everything an image's rows and thumbnails are drawn from."""
    anns = sorted(inputs.pseudo.get(info["id"], []), key=lambda a: a["id"])
    true = [inputs.truth.get(a["id"], {}).get("segmentation") for a in anns]
    return _digest(_file_bytes(inputs.layout.maps_file(info["id"])),
                   _file_bytes(inputs.layout.seg_label(info["id"])),
                   _file_bytes(inputs.img_dir / info["file_name"]),
                   json.dumps([anns, true, inputs.class_names, inputs.palette], sort_keys=True).encode())


def _load_arrays(inputs: RunInputs, info: dict) -> tuple:
    """The maps file, image and label of one image; ValueError naming the file when unusable."""
    maps_file = inputs.layout.maps_file(info["id"])
    saved, reason = read_maps_file(maps_file)
    if saved is None or "records" not in saved:
        raise ValueError(reason or f"maps file {maps_file} lacks its records")
    try:
        records = json.loads(str(saved["records"]))
    except json.JSONDecodeError as err:
        raise ValueError(f"maps file {maps_file}: its records are not JSON ({err})") from err
    if not isinstance(records, list) or len(records) != len(saved["boxes"]):
        raise ValueError(f"{maps_file}: {len(records)} records for {len(saved['boxes'])} boxes")
    image_file = inputs.img_dir / info["file_name"]
    recorded = str(saved.get("image_sha256", ""))
    if recorded and file_digest_or_none(image_file) != recorded:  # new pictures with old masks would mislead
        raise ValueError(f"stale: image file {image_file} changed (or went) since its maps were made: "
                         "rerun generate")
    label_file = inputs.layout.seg_label(info["id"])
    try:
        image = read_image(image_file).permute(1, 2, 0).numpy()  # as the labels saw it (EXIF orientation)
        label = read_label(label_file)
    except InputError as err:
        raise ValueError(f"image {info['id']}: {err}") from err
    if label.shape != image.shape[:2]:
        raise ValueError(f"label {label_file} is {label.shape[1]}x{label.shape[0]}, its image "
                         f"{image.shape[1]}x{image.shape[0]}")
    return saved, records, image, label


def _true_mask(inputs: RunInputs, ann_id: int, height: int, width: int) -> np.ndarray | None:
    """The true mask of a pseudo annotation (None without one); ValueError naming the gt file."""
    true = inputs.truth.get(ann_id)
    if true is None:
        return None
    return annotation_mask(true, height, width, inputs.gt)


def _thumb(layout: RunLayout, name: str) -> str:
    """A thumbnail's address as the page names it: relative to the report folder."""
    return (layout.report_thumbs / name).relative_to(layout.report_dir).as_posix()


def image_entry(inputs: RunInputs, info: dict, key: str) -> dict:
    """Rows and thumbnails of one image (draws and writes the thumbnails)."""
    saved, records, image, label = _load_arrays(inputs, info)
    height, width = image.shape[:2]
    by_id = {a["id"]: a for a in inputs.pseudo.get(info["id"], [])}
    masks = np.stack([decode_mask(by_id[int(i)]["segmentation"], height, width) if int(i) in by_id
                      else np.zeros((height, width), bool) for i in saved["ann_ids"]]) \
        if len(saved["ann_ids"]) else np.zeros((0, height, width), bool)
    prefix = f"{info['id']}-{key[:10]}"
    entry = {"id": int(info["id"]), "file": info["file_name"], "width": width, "height": height,
             "thumb": _thumb(inputs.layout, f"{prefix}-image.png"),
             "label_thumb": _thumb(inputs.layout, f"{prefix}-label.png"),
             "ignored": float((label == 255).mean()), "rows": []}
    report_dir = inputs.layout.report_dir  # thumbnails are named relative to the page
    save_png(report_dir / entry["thumb"], overview(image, saved["boxes"], masks))
    save_png(report_dir / entry["label_thumb"], label_view(image, label, inputs.palette))
    claimed_by = masks.sum(0)
    flat = masks.reshape(len(masks), -1).astype(np.float32)  # exact counts below 2**24 pixels
    areas = flat.sum(1)
    shared = flat @ flat.T  # [K, K] pixels in both masks
    covers = shared / np.maximum(areas, 1)[None, :]  # [K, K]: share of mask j inside mask i
    np.fill_diagonal(covers, 0.0)
    for k, (box, cls, ann_id, record) in enumerate(zip(saved["boxes"], saved["classes"], saved["ann_ids"], records)):
        ann_id = int(ann_id)
        mask = masks[k]
        x1, y1, x2, y2 = (float(v) for v in box)
        area, box_area = int(mask.sum()), max((x2 - x1) * (y2 - y1), 1e-6)
        true_mask = _true_mask(inputs, ann_id, height, width)
        thumb = _thumb(inputs.layout, f"{prefix}-box{ann_id}.png")
        save_png(report_dir / thumb, box_view(image, saved["maps"][k], box, mask, true_mask))
        entry["rows"].append({
            "ann_id": ann_id, "image_id": int(info["id"]), "index": k,
            "class": inputs.class_names[int(cls)] if 0 <= int(cls) < len(inputs.class_names) else str(int(cls)),
            "box": [round(v, 1) for v in (x1, y1, x2, y2)], "box_w": round(x2 - x1, 1), "box_h": round(y2 - y1, 1),
            "positives": record.get("num_positives"), "iou_threshold": record.get("iou_threshold"),
            "fallback": bool(record.get("fallback", False)), "stride": record.get("stride"),
            "steps": record.get("steps"), "final_loss": record.get("final_loss"),
            "mask_area": area, "fill": round(area / box_area, 4),
            # share of the mask that another box's mask covers too
            "claimed": round(float(((claimed_by > 1) & mask).sum() / area), 4) if area else 0.0,
            # the largest share of another box's mask that this mask covers
            "covers": round(float(covers[k].max()), 4) if len(masks) > 1 else 0.0,
            "iou": (round(mask_iou(torch.from_numpy(mask)[None], torch.from_numpy(true_mask)[None]).item(), 4)
                    if true_mask is not None else None),
            "thumb": thumb,
        })
    return entry


def collect(inputs: RunInputs, show_progress: bool = False) -> tuple[list[dict], list[dict], int]:
    """Every image's entry, from the cache where its key is unchanged.

    Returns:
        entries (one per image with maps), failures (``{"image_id", "reason"}``), and how many
        images were drawn anew.
    """
    layout = inputs.layout
    layout.report_thumbs.mkdir(parents=True, exist_ok=True)
    layout.report_cache.mkdir(parents=True, exist_ok=True)
    entries, failures, drawn = [], [], 0
    for info in tqdm(inputs.images, desc="report", unit="img", disable=not show_progress):
        if not layout.maps_file(info["id"]).is_file():
            failed = layout.failure_file(info["id"])
            reason = json.loads(failed.read_text()).get("reason") if failed.is_file() else "no maps file"
            failures.append({"image_id": info["id"], "reason": reason})
            continue
        key = image_key(inputs, info)
        cache_file = layout.report_cache_file(info["id"])
        cached = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        thumbs = [cached.get("thumb"), cached.get("label_thumb")] + [r["thumb"] for r in cached.get("rows", [])]
        if cached.get("key") == key and all(t and (layout.report_dir / t).is_file() for t in thumbs):
            entries.append(cached)
            continue
        try:
            entry = {"key": key, **image_entry(inputs, info, key)}
        except ValueError as err:
            failures.append({"image_id": info["id"], "reason": str(err)})
            continue
        write_json_atomic(cache_file, entry)
        entries.append(entry)
        drawn += 1
    _remove_stale(layout, entries)
    return entries, failures, drawn


def _remove_stale(layout: RunLayout, entries: list[dict]) -> None:
    """Deletes thumbnails and cache files (inside the report folder) that no entry uses any more."""
    names = [e["thumb"] for e in entries] + [e["label_thumb"] for e in entries] + \
        [r["thumb"] for e in entries for r in e["rows"]]
    used = {layout.report_dir / name for name in names}
    for path in layout.report_thumbs.glob("*.png"):
        if path not in used:
            path.unlink()
    cached = {layout.report_cache_file(e["id"]) for e in entries}
    for path in layout.report_cache.glob("*.json"):
        if path not in cached:
            path.unlink()
