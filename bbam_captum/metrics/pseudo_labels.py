"""Scores of pseudo labels against true masks (``bbam-captum evaluate``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..labels import IGNORE
from ..synth.coco import decode_mask


def box_fill_miou(ann_file: str | Path) -> float:
    """Mean IoU of each box filled as a mask with the object's true mask (the trivial baseline).

    The true mask lies inside its box, so the IoU is the mask's area over the box's area.
    """
    anns = json.loads(Path(ann_file).read_text())["annotations"]
    return float(sum(a["area"] / (a["bbox"][2] * a["bbox"][3]) for a in anns) / len(anns))


def confusion_miou(confusion: np.ndarray) -> tuple[float, list[float]]:
    """Mean IoU over classes present in the truth or the prediction, and the per-class IoU."""
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    per_class = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return float(np.nanmean(per_class)), per_class.tolist()


def evaluate_pseudo_labels(pred: str | Path, gt_ann: str | Path) -> dict:
    """Scores ``pred`` (the output folder of ``generate``) against the true masks of ``gt_ann``.

    Returns:
        ``instance_miou``: mean IoU of each object's pseudo mask with its true mask, over
        all objects of ``gt_ann`` (an object without a pseudo mask scores 0);
        ``semantic_miou``: mean IoU over background and classes of the label PNGs, with
        ignored (255) pixels counted as background; ``semantic_miou_labelled``: the
        same over the pixels that are not ignored; ``ignored_fraction``; per-class IoUs.
    """
    pred, gt = Path(pred), json.loads(Path(gt_ann).read_text())
    pseudo = json.loads((pred / "coco" / "instances.json").read_text())
    pseudo_by_id = {a["id"]: a for a in pseudo["annotations"]}
    images = {i["id"]: i for i in gt["images"]}
    categories = sorted(c["id"] for c in gt["categories"])
    class_of = {cat: i + 1 for i, cat in enumerate(categories)}
    n = len(categories) + 1
    ious, truth_maps = [], {i: np.zeros((img["height"], img["width"]), np.uint8) for i, img in images.items()}
    for ann in gt["annotations"]:
        img = images[ann["image_id"]]
        true = decode_mask(ann["segmentation"], img["height"], img["width"])
        truth_maps[ann["image_id"]][true] = class_of[ann["category_id"]]
        if ann["id"] in pseudo_by_id:
            mask = decode_mask(pseudo_by_id[ann["id"]]["segmentation"], img["height"], img["width"])
            union = (mask | true).sum()
            ious.append(float((mask & true).sum() / union) if union else 1.0)
        else:
            ious.append(0.0)
    conf_all = np.zeros((n, n), np.int64)
    conf_labelled = np.zeros((n, n), np.int64)
    ignored = total = 0
    for image_id, truth in truth_maps.items():
        stem = Path(images[image_id]["file_name"]).with_suffix("").as_posix()
        label_file = pred / "mmseg" / "labels" / f"{stem}.png"
        label = np.array(Image.open(label_file)) if label_file.exists() else np.zeros_like(truth)
        keep = label != IGNORE
        ignored += int((~keep).sum())
        total += label.size
        as_bg = np.where(keep, label, 0)
        conf_all += np.bincount(truth.ravel().astype(np.int64) * n + as_bg.ravel(), minlength=n * n).reshape(n, n)
        conf_labelled += np.bincount(truth[keep].astype(np.int64) * n + label[keep], minlength=n * n).reshape(n, n)
    semantic, per_class = confusion_miou(conf_all)
    semantic_labelled, _ = confusion_miou(conf_labelled)
    names = ["background"] + [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    return {
        "objects": len(ious),
        "instance_miou": float(np.mean(ious)) if ious else float("nan"),
        "semantic_miou": semantic,
        "semantic_miou_labelled": semantic_labelled,
        "ignored_fraction": ignored / max(total, 1),
        "semantic_iou_per_class": dict(zip(names, per_class)),
    }
