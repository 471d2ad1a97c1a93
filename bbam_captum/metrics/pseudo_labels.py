"""Scores of pseudo labels against true masks (``bbam-captum evaluate``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.coco import annotation_mask, load_coco_json
from ..io.images import read_label
from ..io.layout import RunLayout
from ..labels import IGNORE


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


def _check_same_images(pred_images: list, gt_images: list, pred_file: Path, gt_file: Path) -> None:
    """Prediction and truth list the same images: ids, file names and sizes."""
    pred = {i["id"]: i for i in pred_images}
    gt = {i["id"]: i for i in gt_images}
    problems = [f"image id {i} is in {pred_file} but not in {gt_file}" for i in pred.keys() - gt.keys()]
    problems += [f"image id {i} is in {gt_file} but not in {pred_file}" for i in gt.keys() - pred.keys()]
    for i in sorted(pred.keys() & gt.keys()):
        for key in ("file_name", "width", "height"):
            if pred[i].get(key) != gt[i].get(key):
                problems.append(f"image id {i}: {key} {pred[i].get(key)!r} in {pred_file}, {gt[i].get(key)!r} in "
                                f"{gt_file}")
    if problems:
        listed = "\n  ".join(sorted(problems)[:10])
        raise InputError(f"the prediction and the ground truth describe different images ({len(problems)} "
                         f"difference(s)): is {gt_file} the file the labels were made from?\n  {listed}")


def gt_image_folder(gt_file: Path, gt_img_dir: Path | None = None) -> Path:
    """Where a ground truth's images lie: ``gt_img_dir``, else ``images/`` beside the file
    (``bbam-captum synth``'s layout) when there is one, else the file's own folder."""
    if gt_img_dir is not None:
        return gt_img_dir
    beside = gt_file.parent / "images"
    return beside if beside.is_dir() else gt_file.parent


def check_image_content(recorded: dict[int, str], gt_images: list[dict], gt_file: Path,
                        gt_img_dir: Path | None = None) -> int:
    """The ground truth's image files are those the labels were made from, by content: the
    sha256 of each (found under :func:`gt_image_folder`) against ``recorded`` (by image id,
    as the maps files recorded them). Returns how many images could not be checked (no
    record, or no file found).

    Raises:
        InputError: listing the images whose content differs.
    """
    from ..io.images import file_digest

    folder = gt_image_folder(gt_file, gt_img_dir)
    problems, unchecked = [], 0
    for img in gt_images:
        path = folder / img["file_name"]
        if img["id"] not in recorded or not path.is_file():
            unchecked += 1
            continue
        if file_digest(path) != recorded[img["id"]]:
            problems.append(f"image id {img['id']}: {path} is not the image its labels were made from")
    if problems:
        listed = "\n  ".join(problems[:10])
        raise InputError(f"the prediction and the ground truth {gt_file} describe different images "
                         f"({len(problems)} image(s) of other content, though ids, names and sizes may agree): "
                         f"is it the file the labels were made from, and are the labels up to date?\n  {listed}")
    return unchecked


def _true_mask(ann: dict, img: dict, gt_file: Path) -> np.ndarray:
    try:
        return annotation_mask(ann, img["height"], img["width"], gt_file)
    except ValueError as err:  # a file the user gave: unusable input
        raise InputError(str(err)) from err


def _read_label(path: Path, img: dict) -> np.ndarray | None:
    """A label PNG as np.ndarray[H, W] uint8, or None when there is none."""
    if not path.exists():
        return None
    label = read_label(path)
    if label.shape != (img["height"], img["width"]) or label.dtype != np.uint8:
        raise InputError(f"label {path} is {label.dtype} of shape {label.shape}, image {img['id']} is "
                         f"{img['width']}x{img['height']} (expected uint8 ({img['height']}, {img['width']}))")
    return label


def evaluate_pseudo_labels(pred: str | Path, gt_ann: str | Path, image_digests: dict[int, str] | None = None,
                           gt_img_dir: str | Path | None = None) -> dict:
    """Scores ``pred`` (the output folder of ``generate``) against the true masks of ``gt_ann``.

    Returns:
        ``instance_miou``: mean IoU of each object's pseudo mask with its true mask, over
        all objects of ``gt_ann`` (an object without a pseudo mask scores 0);
        ``semantic_miou``: mean IoU over background and classes of the label PNGs, with
        ignored (255) pixels counted as background; ``semantic_miou_labelled``: the
        same over the pixels that are not ignored; ``ignored_fraction``; per-class IoUs.

        ``images_unchecked``: with ``image_digests`` (the sha256 of each image file the labels
        were made from, by image id), how many of the ground truth's images could not be
        compared by content (see :func:`check_image_content`; ``gt_img_dir`` says where
        they lie). ``iscrowd: 1`` objects of the truth are left out of ``instance_miou``.

    Raises:
        InputError: a malformed file, ground truth without masks, or prediction and
            ground truth that describe different images (ids, file names, sizes, content).
    """
    layout, gt_file = RunLayout(pred), Path(gt_ann)
    pred_file = layout.coco_instances
    gt = load_coco_json(gt_file, need_masks=True)
    pseudo = load_coco_json(pred_file)
    _check_same_images(pseudo["images"], gt["images"], pred_file, gt_file)
    unchecked = None
    if image_digests is not None:
        unchecked = check_image_content(image_digests, gt["images"], gt_file,
                                        None if gt_img_dir is None else Path(gt_img_dir))
    images = {i["id"]: i for i in gt["images"]}
    categories = sorted(c["id"] for c in gt["categories"])
    class_of = {cat: i + 1 for i, cat in enumerate(categories)}
    dangling = [f"annotation {a['id']}: " + (f"image id {a['image_id']} is not in 'images'"
                                             if a["image_id"] not in images else
                                             f"category id {a['category_id']} is not in 'categories'")
                for a in gt["annotations"] if a["image_id"] not in images or a["category_id"] not in class_of]
    if dangling:
        raise InputError(f"ground truth {gt_file}: {len(dangling)} annotation(s) refer to nothing: "
                         + "; ".join(dangling[:10]))
    pseudo_by_id = {a["id"]: a for a in pseudo["annotations"]}
    n = len(categories) + 1
    by_image: dict[int, list[dict]] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    ious = []
    conf_all = np.zeros((n, n), np.int64)
    conf_labelled = np.zeros((n, n), np.int64)
    ignored = total = 0
    for image_id, img in images.items():
        truth = np.zeros((img["height"], img["width"]), np.uint8)
        for ann in by_image.get(image_id, []):
            true = _true_mask(ann, img, gt_file)
            truth[true] = class_of[ann["category_id"]]
            if ann.get("iscrowd") == 1:  # a crowd region: ignored in training, no object to score
                continue
            guess = pseudo_by_id.get(ann["id"])
            if guess is None or guess.get("image_id") != image_id or "segmentation" not in guess:
                ious.append(0.0)
                continue
            mask = _true_mask(guess, img, pred_file)
            union = (mask | true).sum()
            ious.append(float((mask & true).sum() / union) if union else 1.0)
        label = _read_label(layout.seg_label(image_id), img)
        if label is None:
            label = np.zeros_like(truth)
        if label[label != IGNORE].max(initial=0) >= n:
            raise InputError(f"label {layout.seg_label(image_id)} holds class "
                             f"{int(label[label != IGNORE].max())}, the ground truth has {n - 1} classes")
        keep = label != IGNORE
        ignored += int((~keep).sum())
        total += label.size
        as_bg = np.where(keep, label, 0)
        conf_all += np.bincount(truth.ravel().astype(np.int64) * n + as_bg.ravel(), minlength=n * n).reshape(n, n)
        conf_labelled += np.bincount(truth[keep].astype(np.int64) * n + label[keep], minlength=n * n).reshape(n, n)
    semantic, per_class = confusion_miou(conf_all)
    semantic_labelled, _ = confusion_miou(conf_labelled)
    names = ["background"] + [str(c.get("name", c["id"])) for c in sorted(gt["categories"], key=lambda c: c["id"])]
    return {
        "objects": len(ious),
        "instance_miou": float(np.mean(ious)) if ious else float("nan"),
        "semantic_miou": semantic,
        "semantic_miou_labelled": semantic_labelled,
        "ignored_fraction": ignored / max(total, 1),
        "semantic_iou_per_class": dict(zip(names, per_class)),
        **({} if unchecked is None else {"images_unchecked": unchecked}),
    }
