"""Stage 2 of ``generate``: pseudo labels from the saved maps.

Writes ``OUT/mmseg/`` (label PNGs, split file, classes and palette, a ready config),
``OUT/coco/`` (``instances.json`` with RLE masks, a ready config) and
``OUT/summary.json``. Reads only the maps, the input COCO file and (for refinement) the
images, so it can be rerun with other thresholds in seconds.
"""
from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..attr.settings import BBAMSettings
from ..errors import InputError
from ..io.coco import encode_mask, load_coco_json
from ..io.images import read_image
from ..io.layout import RunLayout, label_name
from ..labels import IGNORE, LabelSettings, pseudo_masks, semantic_label
from ..utils.atomic import atomic_open, write_json_atomic
from .coco_input import CocoInput, ImageItem
from .generate import expected_key, image_path, map_cells, npz_key, read_maps_file, recorded_seconds
from .outputs import check_inputs_outside_outputs

# The training configs inside the package (mm_configs/ of the source tree, shipped as OpenMMLab
# packages ship theirs), so written configs name files that exist however it was installed.
CONFIG_DIR = Path(__file__).resolve().parents[1] / ".mim" / "configs"
SEG_BASE_CONFIG = CONFIG_DIR / "seg" / "fpn_r18-slim_pseudo-labels.py"
INST_BASE_CONFIG = CONFIG_DIR / "inst" / "mask-rcnn_r18-slim_pseudo-labels.py"


def _palette(n: int) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [[0, 0, 0]] + rng.integers(40, 256, (n, 3)).tolist()


def _write_png_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_open(path) as f:
        Image.fromarray(array).save(f, format="PNG")


def image_link_suffix(items: list[ImageItem]) -> str:
    """The suffix of the image links under ``OUT/mmseg/images``: the images' own suffix when
    they all share one, else none (MMSeg's dataset takes one ``img_suffix``; it reads
    images by content, not by suffix)."""
    suffixes = {Path(i.file_name).suffix for i in items}
    return suffixes.pop() if len(suffixes) == 1 else ""


def _link_image(source: Path, link: Path) -> None:
    """``link`` -> ``source`` (a symbolic link, or a copy where links are not allowed), made
    under a temporary name and renamed, so nothing is ever written through an old link."""
    tmp = link.with_name(link.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(source.resolve(), tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, link)


def _ignore_failed_boxes(label: np.ndarray, boxes: np.ndarray) -> None:
    """Background pixels in boxes that were left out become ignore: an object is there."""
    for x1, y1, x2, y2 in boxes:
        window = label[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))]
        window[window == 0] = IGNORE


def _load_maps(path: Path, item: ImageItem, key: str | None) -> tuple[dict | None, str | None]:
    """An image's saved maps as a dict of arrays, or None and why they cannot be used."""
    arrays, reason = read_maps_file(path)
    if arrays is None:
        return None, f"{reason}: rerun generate"
    stored = npz_key(arrays)
    if key is not None and stored and stored != key:
        return None, (f"maps file {path} was made from other boxes, image or settings than the current ones: "
                      "rerun generate")
    if not stored and sorted(arrays["ann_ids"].tolist()) != sorted(item.ann_ids.tolist()):
        return None, f"maps file {path} holds annotations {arrays['ann_ids'].tolist()}, the COCO file " \
                     f"{item.ann_ids.tolist()}: rerun generate"
    k = len(arrays["ann_ids"])
    if (arrays["maps"].shape != (k, item.height, item.width) or arrays["boxes"].shape != (k, 4)
            or arrays["classes"].shape != (k,)):
        return None, (f"maps file {path} is inconsistent: maps {arrays['maps'].shape}, boxes "
                      f"{arrays['boxes'].shape}, classes {arrays['classes'].shape} for a "
                      f"{item.width}x{item.height} image with {k} annotations")
    return arrays, None


def _usable_maps(layout: RunLayout, item: ImageItem, img_dir: Path,
                 fingerprint: str | None) -> tuple[dict | None, str | None]:
    """An image's usable maps, or None and the reason (recorded failure, stale or missing maps)."""
    failed = layout.failure_file(item.image_id)
    if not layout.maps_file(item.image_id).exists():
        reason = json.loads(failed.read_text())["reason"] if failed.exists() else "no maps: not computed yet"
        return None, reason
    key = None
    if fingerprint is not None:
        key = expected_key(item, img_dir, fingerprint)
        if key is None:
            return None, f"image file not found or unreadable: {image_path(img_dir, item)}"
    return _load_maps(layout.maps_file(item.image_id), item, key)


@dataclass(frozen=True)
class _LabelJob:
    """What one image's labels need (picklable, for worker processes)."""

    layout: RunLayout
    item: ImageItem
    img_dir: Path
    settings: LabelSettings
    fingerprint: str | None
    suffix: str
    category_of_class: dict[int, int]


@dataclass
class _ImageLabels:
    """One image's outcome: its failure, or its label name, annotations, BBAM seconds and records."""

    failure: dict | None = None
    name: str | None = None
    annotations: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    records: list[dict] = field(default_factory=list)
    crowds: list[dict] = field(default_factory=list)


def _failed(job: _LabelJob, reason: str) -> _ImageLabels:
    """An image that is not labelled: no label of an older run stays."""
    job.layout.seg_label(job.item.image_id).unlink(missing_ok=True)
    job.layout.seg_image(job.item.image_id, job.suffix).unlink(missing_ok=True)
    return _ImageLabels(failure={"image_id": job.item.image_id, "reason": reason, "boxes": len(job.item.boxes)})


def _label_image(job: _LabelJob) -> _ImageLabels:
    """Writes one image's label PNG and image link; returns its COCO annotations."""
    item, settings, layout = job.item, job.settings, job.layout
    data, reason = _usable_maps(layout, item, job.img_dir, job.fingerprint)
    image = None
    if data is not None and settings.needs_image:
        try:
            image = read_image(image_path(job.img_dir, item)).permute(1, 2, 0).numpy()
        except InputError as err:
            data, reason = None, str(err)
    if data is None:
        return _failed(job, reason)
    seconds = recorded_seconds(layout.root, item.image_id)
    if seconds is None:
        seconds = float(data.get("seconds", 0.0))
    unknown = sorted({int(c) for c in data["classes"]} - job.category_of_class.keys())
    if unknown:
        return _failed(job, f"maps file of image {item.image_id} holds classes {unknown} that no category "
                                  "of the COCO file maps to: rerun generate")
    try:
        records = json.loads(str(data["records"])) if "records" in data else []
        cells = map_cells(data, item.height, item.width)
        instance, foreground, uncertain = pseudo_masks(data["maps"], data["boxes"], settings, image, cells)
    except (ValueError, RuntimeError) as err:  # what the label chain cannot take of this image fails it alone
        return _failed(job, f"image {item.file_name} cannot be labelled: {type(err).__name__}: {err}")
    label = semantic_label(foreground, uncertain, data["boxes"], data["classes"])
    _ignore_failed_boxes(label, item.ignore_boxes)
    _write_png_atomic(layout.seg_label(item.image_id), label)
    _link_image(image_path(job.img_dir, item), layout.seg_image(item.image_id, job.suffix))
    annotations = []
    band = uncertain & ~instance  # the instance's uncertain pixels: no weight in instance training
    for mask, ignore, box, cls, ann_id in zip(instance, band, data["boxes"], data["classes"], data["ann_ids"]):
        x1, y1, x2, y2 = (float(v) for v in box)
        annotations.append({"id": int(ann_id), "image_id": item.image_id,
                            "category_id": int(job.category_of_class[int(cls)]),
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(mask.sum()), "iscrowd": 0,
                            "segmentation": encode_mask(mask), "ignore_segmentation": encode_mask(ignore)})
    return _ImageLabels(name=label_name(item.image_id), annotations=annotations, seconds=seconds, records=records,
                        crowds=_crowd_annotations(item))


def _crowd_annotations(item: ImageItem) -> list[dict]:
    """The image's ``iscrowd: 1`` regions as COCO annotations, their box as the mask: MMDetection
    ignores such regions in training rather than learning them as objects."""
    crowds = []
    for crowd in item.crowds:
        x, y, w, h = crowd["bbox"]
        mask = np.zeros((item.height, item.width), bool)
        mask[int(np.floor(y)):int(np.ceil(y + h)), int(np.floor(x)):int(np.ceil(x + w))] = True
        crowds.append({"id": crowd["id"], "image_id": item.image_id, "category_id": crowd["category_id"],
                       "bbox": [x, y, w, h], "area": int(mask.sum()), "iscrowd": 1, "segmentation": encode_mask(mask)})
    return crowds


def _init_worker(parent: int) -> None:
    torch.set_num_threads(1)  # each worker process takes one core
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """Ends this worker process when ``parent`` ends (killed too), rather than leaving it to
    run on with no one to read its results: on Linux the kernel sends SIGTERM
    (``prctl(PR_SET_PDEATHSIG)``), elsewhere a thread watches the parent's id."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the call
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _labelled(jobs: list[_LabelJob], workers: int) -> Iterator[_ImageLabels]:
    """Each job's outcome, in the jobs' order, from this process or from ``workers`` processes."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_label_image, jobs)
        return
    with label_pool(min(workers, len(jobs))) as pool:
        yield from pool.map(_label_image, jobs, chunksize=1)


def label_pool(workers: int) -> ProcessPoolExecutor:
    """The worker processes of the label step: one thread each, ending with this process."""
    # spawned, not forked: a fork of a process whose OpenMP threads have run can hang in torch
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(),))


def write_labels(out: Path, coco: CocoInput, img_dir: Path, settings: LabelSettings, class_names: tuple[str, ...],
                 bbam_settings: BBAMSettings, run_stats: dict | None = None, fingerprint: str | None = None,
                 workers: int = 1, show_progress: bool = False) -> dict:
    """Writes mmseg and COCO pseudo labels and the summary from ``out/maps``; returns the summary.

    Labels and image links are named by image id (``mmseg/labels/{image_id}.png``,
    ``mmseg/images/{image_id}{suffix}``). With ``fingerprint`` (see
    :func:`bbam_captum.pipeline.generate.run_fingerprint`) a maps file must carry the key
    of its image's current inputs, otherwise it is reported stale and its image not
    labelled; a maps file without a key must hold the image's annotation ids. Boxes that
    were left out are ignore (255) in the semantic labels. ``bbam_settings`` (what made the
    maps; every field) and ``run_stats`` (counts and timings of the run that made
    the maps) join the summary. ``workers`` processes share the images (the files written
    are the same for any number); ``show_progress`` draws a bar over images.
    """
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    check_inputs_outside_outputs(out, [coco.path, *(image_path(img_dir, i) for i in coco.items)])
    layout = RunLayout(out)
    for folder in (layout.seg_labels_dir, layout.seg_images_dir, layout.coco_dir):
        folder.mkdir(parents=True, exist_ok=True)
    category_of_class = {c: cat for cat, c in coco.class_of_category.items()}
    suffix = image_link_suffix(coco.items)
    annotations, crowds, names, failures = [], [], [], list(coco.failures)
    seconds, records, boxes_failed = 0.0, [], len(coco.failures)
    jobs = [_LabelJob(layout, item, img_dir, settings, fingerprint, suffix, category_of_class) for item in coco.items]
    # closed on the way out, error or not, so that worker processes end with the loop
    with closing(_labelled(jobs, workers)) as outcomes, tqdm(outcomes, total=len(jobs), desc="labels", unit="img",
                                                              disable=not show_progress) as results:
        for result, item in zip(results, coco.items):
            failures += item.failures
            boxes_failed += len(item.failures)
            if result.failure is not None:
                failures.append(result.failure)
                boxes_failed += result.failure["boxes"]
                continue
            names.append(result.name)
            annotations += result.annotations
            crowds += result.crowds
            seconds += result.seconds
            records += result.records

    with atomic_open(layout.seg_split, "w") as f:
        f.write("".join(f"{n}\n" for n in names))
    seg_classes = ("background", *class_names)
    layout.seg_classes.write_text(json.dumps({"classes": seg_classes, "palette": _palette(len(class_names)),
                                              "ignore_index": IGNORE}, indent=1))
    _write_seg_config(layout, seg_classes, suffix)
    images = load_coco_json(coco.path)["images"]
    write_json_atomic(layout.coco_instances, {"images": images, "annotations": annotations + crowds,
                                              "categories": coco.categories})
    _write_inst_config(layout, img_dir, tuple(str(c.get("name", c["id"])) for c in coco.categories))

    boxes_total = sum(len(i.boxes) + len(i.failures) for i in coco.items) + len(coco.failures)
    summary = {
        "images": len(coco.items),
        "images_labelled": len(names),
        "images_failed": len(coco.items) - len(names),
        "boxes": boxes_total,
        "boxes_labelled": len(annotations),
        "boxes_failed": boxes_failed,
        "boxes_without_positive_proposal": sum(1 for r in records if r["fallback"]),
        "crowd_regions": len(crowds),
        "bbam_settings": asdict(bbam_settings),
        "label_settings": asdict(settings),
        "timings": {"bbam_seconds": round(seconds, 2),
                    "bbam_seconds_per_object": round(seconds / max(len(records), 1), 3)},
        "failures": failures,
        **(run_stats or {}),
    }
    write_json_atomic(layout.summary_file, summary, indent=1)
    return summary


def _write_seg_config(layout: RunLayout, classes: tuple[str, ...], img_suffix: str) -> None:
    palette = json.loads(layout.seg_classes.read_text())["palette"]
    images, labels = layout.seg_images_dir.resolve(), layout.seg_labels_dir.resolve()
    text = f"""# Train a semantic segmentation model on these pseudo labels:
#   mim train mmseg {layout.seg_config.resolve()}
_base_ = {str(SEG_BASE_CONFIG)!r}

metainfo = dict(classes={classes!r}, palette={palette!r})
train_dataloader = dict(dataset=dict(
    data_root='',
    ann_file={str(layout.seg_split.resolve())!r},
    data_prefix=dict(img_path={str(images)!r}, seg_map_path={str(labels)!r}),
    img_suffix={img_suffix!r},
    seg_map_suffix='.png',
    metainfo=metainfo))
model = dict(decode_head=dict(num_classes={len(classes)}))
work_dir = {str(layout.seg_work_dir.resolve())!r}
"""
    layout.seg_config.write_text(text)


def _write_inst_config(layout: RunLayout, img_dir: Path, classes: tuple[str, ...]) -> None:
    text = f"""# Train an instance segmentation model on these pseudo masks:
#   mim train mmdet {layout.coco_config.resolve()}
_base_ = {str(INST_BASE_CONFIG)!r}

metainfo = dict(classes={classes!r})
train_dataloader = dict(dataset=dict(
    data_root='',
    ann_file={str(layout.coco_instances.resolve())!r},
    data_prefix=dict(img={str(img_dir.resolve()) + '/'!r}),
    metainfo=metainfo))
model = dict(roi_head=dict(bbox_head=dict(num_classes={len(classes)}), mask_head=dict(num_classes={len(classes)})))
work_dir = {str(layout.coco_work_dir.resolve())!r}
"""
    layout.coco_config.write_text(text)
