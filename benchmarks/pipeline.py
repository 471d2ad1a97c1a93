"""End to end: segmentation networks trained on each label source, scored against true masks.

    .venv/bin/python -m benchmarks.pipeline [--quick] [--world NAME] [--seeds 0,1] --out DIR
    .venv/bin/python -m benchmarks.pipeline --train-ann A.json --train-images DIR --val-ann B.json
        --val-images DIR --config CFG --checkpoint CKPT --name NAME --out DIR   # your own data

For each label source the same pseudo-label writer (``bbam_captum.pipeline.write_labels``) turns
per-box maps of the first images of a train split into MMSegmentation and COCO labels; then the
same semantic model (the shipped Semantic FPN config) and the same Mask R-CNN (the shipped config,
which trains with each instance's ignore band, as ``generate``'s written config does) are trained
on them with ``mim train``, once per training seed, and scored on a val split with true masks
(mmseg ``IoUMetric``, mmdet ``CocoMetric`` segm). Both models start from the detector's weights
where their shapes match (Semantic FPN its backbone and FPN, Mask R-CNN everything but the mask
head), as a user with only boxes would: the detector BBAM explains was trained on those boxes.

Label sources:

- ``bbam``: BBAM's maps through the default label chain (what ``generate`` writes);
- ``box``: the filled box through the same default chain, so that the maps' share can be told
  from the chain's;
- ``gt``: the true masks (the full-supervision reference);
- ``bbam_seeded``: ``bbam``'s labels, the mask head growing seeds into the band (threshold 0.9,
  the original's); its semantic model is ``bbam``'s, so only Mask R-CNN is trained;
- ``bbam_self``: one round of self-training: the masks that ``bbam``'s Mask R-CNN (training seed
  ``TEACHER_SEED``) gives for the train split's own boxes, through
  :data:`~bbam_captum.pipeline.self_training.SELF_TRAINING_LABELS`, as the next
  labels of both models;
- ``bbam_cross``: the same round cross-fitted: the train split's images in two halves (even and
  odd position), a Mask R-CNN trained on bbam's labels of each half (seed ``TEACHER_SEED``), and
  each half labelled by the model of the other, which has not seen its labels: it tells "the round
  does not help" from "the teacher has learnt the labels' errors by heart";
- older variants: ``bbam_thresholds`` / ``bbam_refined`` (the maps blurred and thresholded, without
  and with Eq. 4), ``box_filled`` / ``box_refined`` (the box as it is, and refined), ``gradcam``
  (Grad-CAM's maps through the default chain).

With ``--world NAME`` (default ``shapes``, the bundled detector's world) the splits are drawn from
that world and its detector (``make detector WORLD=NAME``) explains the boxes. With ``--train-ann``
and the rest, the splits are your COCO files (the val file with true masks) and your detector
(``--config``/``--checkpoint``); the models are still the shipped slim configs.

``--models seg`` (or ``inst``) trains one of the two models only; ``--seg-iters`` /
``--inst-iters`` set each model's schedule, and a schedule other than the full scale's keeps runs
of its own (``..._s0_i4000``).

Writes ``DIR/pipeline_{NAME}.json`` (rows: ``label_source``, ``seed``, ``semantic_miou``,
``semantic_class_iou``, ``mask_ap``, ``mask_ap50``, ``train_minutes``, ...),
``DIR/pipeline_{NAME}_meta.json`` and ``DIR/pipeline_{NAME}.md`` (mean and spread over seeds per
source, each class's semantic IoU); data, labels and training runs go to ``DIR/work/{NAME}``.
Everything resumes: maps per image, each training run once its result file exists and its inputs
(config, label files, detector weights) are unchanged, so invocations with other ``--seeds`` add
to one table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from bbam_captum import BBAM, BBAMSettings, load_detector
from bbam_captum.detectors import MMDetTwoStageAdapter
from bbam_captum.io import file_digest, load_coco_image, read_image
from bbam_captum.labels import LabelSettings
from bbam_captum.pipeline import RunLayout, compute_maps, read_coco, write_labels
from bbam_captum.pipeline.coco_input import CocoInput
from bbam_captum.pipeline.generate import save_maps
from bbam_captum.pipeline.self_training import SELF_TRAINING_LABELS, model_maps
from bbam_captum.synth import WORLDS, write_dataset
from bbam_captum.utils.atomic import write_json_atomic

from .harness import markdown_table, start_run, write_markdown
from .methods import GradCAMMethod

SOURCES = ("bbam", "box", "gt", "bbam_self", "bbam_cross", "bbam_seeded", "bbam_thresholds", "bbam_refined",
           "box_filled", "box_refined", "gradcam")
DEFAULT_SOURCES = ("bbam", "box", "gt")
REUSE_BBAM_MAPS = ("bbam_thresholds", "bbam_refined")  # labels of these sources come from bbam's maps
REUSE_BBAM_LABELS = ("bbam_seeded",)  # bbam's labels and semantic model; another mask head
SELF_TRAINED = ("bbam_self", "bbam_cross")  # labels from Mask R-CNNs trained on bbam's labels
TEACHER_SEED = 0  # the training seed of those Mask R-CNNs
HALVES = (0, 1)  # bbam_cross: the train images at even and at odd positions
SEED_THRESHOLD = 0.9  # bbam_seeded: the original's seed-growing threshold
TRAIN_SEED, VAL_SEED = 0, 1  # the bundled detector's train and val splits
# mmengine resolves a config's ``mmseg::`` base through pkg_resources, which fails (TypeError) when two
# threads of --jobs ask at once: the runs' threads read configs one at a time
_CONFIG_LOCK = threading.Lock()
VAL_POINTS = 4  # validations per training run (the last one is the reported score)
# Binary maps (true masks, filled boxes) need neither blur nor a low threshold, and are written as they are:
# no rule of the chain reads the image (opening holes would cut into a true mask whose fill looks like its
# surroundings).
BINARY = LabelSettings(theta_fg=0.5, theta_bg=0.5, instance_threshold=0.5, blur_sigma=0.0, refine=False, crf=False,
                       open_holes=False)
# The box refined: blurred 3 px and cut at 0.6 (the threshold the attribution benchmark's calibration
# chose for the refined box when segments were cut to the box; the committed run keeps it).
BOX_REFINED = LabelSettings(theta_fg=0.6, theta_bg=0.6, instance_threshold=0.6, blur_sigma=3.0, refine=True,
                            crf=False, open_holes=False)


@dataclass(frozen=True)
class Scale:
    num_train: int
    num_val: int
    seg_iters: int
    inst_iters: int


FULL = Scale(num_train=200, num_val=100, seg_iters=2000, inst_iters=600)
QUICK = Scale(num_train=24, num_val=20, seg_iters=40, inst_iters=40)


def make_split(root: Path, num: int, seed: int, world: str = "shapes") -> Path:
    """The first ``num`` images of a synthetic split of ``world`` (drawn once); returns its COCO file."""
    ann = root / "annotations.json"
    if ann.is_file() and len(json.loads(ann.read_text())["images"]) == num:
        return ann
    return write_dataset(root, num, seed, WORLDS[world], show_progress=False)


def detector_files(world: str) -> tuple[Path, Path]:
    """Config and checkpoint of the detector trained on ``world``'s boxes."""
    from .worlds import detector_files as trained

    files = trained(world)
    if files is None:
        raise SystemExit(f"no detector for world {world!r}: train it with `make detector WORLD={world}`")
    return files


@dataclass(frozen=True)
class Split:
    """A COCO file and the folder its ``file_name``s are relative to."""

    ann: Path
    images: Path


def world_split(root: Path, num: int, seed: int, world: str) -> Split:
    ann = make_split(root, num, seed, world)
    return Split(ann, ann.parent / "images")


def _write_binary_maps(out: Path, coco: CocoInput, split: Split, source: str) -> None:
    """Maps files (the format ``generate`` writes) holding the true masks or filled boxes."""
    ann = json.loads(split.ann.read_text())
    infos = {i["id"]: i for i in ann["images"]}
    for item in coco.items:
        if RunLayout(out).maps_file(item.image_id).exists():
            continue
        if source == "gt":
            _, _, _, true = load_coco_image(ann, infos[item.image_id], split.images)
            maps = true.numpy()
        else:
            maps = np.zeros((len(item.boxes), item.height, item.width), bool)
            for k, (x1, y1, x2, y2) in enumerate(np.round(item.boxes).astype(int)):
                maps[k, y1:y2, x1:x2] = True
        save_maps(out, item, maps, "[]", 0.0)


def _write_gradcam_maps(out: Path, coco: CocoInput, img_dir: Path, adapter: MMDetTwoStageAdapter) -> None:
    method = GradCAMMethod()
    for item in coco.items:
        if RunLayout(out).maps_file(item.image_id).exists():
            continue
        start = time.perf_counter()
        image = read_image(img_dir / item.file_name)
        maps = method(adapter, image, torch.from_numpy(item.boxes), torch.from_numpy(item.classes))
        save_maps(out, item, maps[:, 0].numpy(), "[]", time.perf_counter() - start)


def _checkpoints(work_dir: Path) -> dict[int, Path]:
    """A run's saved checkpoints by their iteration, in order."""
    saved = {int(f.stem.split("_")[1]): f for f in work_dir.glob("iter_*.pth")}
    return dict(sorted(saved.items()))


def _last_checkpoint(run: Path) -> Path:
    checkpoints = _checkpoints(run / "work_dir")
    if not checkpoints:
        raise RuntimeError(f"no checkpoint under {run / 'work_dir'}")
    return checkpoints[max(checkpoints)]


def make_self_labels(out: Path, split: Split, teachers: dict[int | None, Path], class_names: tuple[str, ...],
                     bbam_settings: BBAMSettings) -> dict:
    """Labels in ``out`` from the masks of Mask R-CNNs trained by ``benchmarks.pipeline``:
    ``teachers`` maps a half (see :func:`half_items`) to the run whose model labels it, or None to
    the run that labels every image (``bbam_self``)."""
    stamp = out / "teacher.json"  # maps of other teachers are made anew
    checkpoints = {half: _last_checkpoint(run) for half, run in teachers.items()}
    teacher = {"all" if half is None else str(half): {"run": run.name, "checkpoint": file_digest(checkpoints[half])}
               for half, run in teachers.items()}
    if not stamp.is_file() or json.loads(stamp.read_text()) != teacher:
        shutil.rmtree(out, ignore_errors=True)
    coco = read_coco(split.ann, class_names)
    RunLayout(out).maps_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamp, teacher)
    start = time.perf_counter()
    for half, run in teachers.items():
        adapter = MMDetTwoStageAdapter(load_detector(run / "config.py", checkpoints[half]))
        items = coco.items if half is None else half_items(coco.items, half)
        model_maps(adapter, replace(coco, items=items), split.images, out)
    stats = {"maps_wall_seconds_this_run": round(time.perf_counter() - start, 1)}
    return write_labels(out, coco, split.images, SELF_TRAINING_LABELS, class_names, bbam_settings, stats)


def half_items(items: list, half: int) -> list:
    """The items at even (``half`` 0) or odd (1) positions."""
    return items[half::2]


def write_half(labels: Path, keep: set[int], out: Path) -> Path:
    """``out/coco``: the instances of ``labels`` (a written labels folder) on the images ``keep``
    (ids), and a config over ``labels``' own that trains on them; returns ``out``."""
    instances = json.loads(RunLayout(labels).coco_instances.read_text())
    instances["images"] = [i for i in instances["images"] if i["id"] in keep]
    instances["annotations"] = [a for a in instances["annotations"] if a["image_id"] in keep]
    layout = RunLayout(out)
    layout.coco_instances.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(layout.coco_instances, instances)
    layout.coco_config.write_text(
        f"_base_ = {str(RunLayout(labels).coco_config.resolve())!r}\n"
        f"train_dataloader = dict(dataset=dict(ann_file={str(layout.coco_instances.resolve())!r}))\n")
    return out


def make_labels(source: str, out: Path, split: Split, model, bbam_settings: BBAMSettings) -> dict:
    """Maps (resumable) and then mmseg + COCO labels of ``source`` in ``out``; returns the summary."""
    adapter = MMDetTwoStageAdapter(model)
    coco = read_coco(split.ann, adapter.class_names)
    RunLayout(out).maps_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    settings = LabelSettings()  # the default chain, as generate writes it
    if source == "bbam":
        compute_maps(BBAM(adapter), coco, split.images, out, bbam_settings)
    elif source == "bbam_thresholds":  # bbam's maps, blurred and thresholded
        settings = LabelSettings(refine=False, crf=False)
    elif source == "bbam_refined":  # the same, refined (Eq. 4)
        settings = LabelSettings(refine=True, crf=False)
    elif source == "gradcam":
        _write_gradcam_maps(out, coco, split.images, adapter)
    elif source == "box":  # the filled box through the default chain
        _write_binary_maps(out, coco, split, "box")
    elif source == "box_refined":  # the refinement alone, from the filled box
        _write_binary_maps(out, coco, split, "box")
        settings = BOX_REFINED
    else:  # gt, box_filled: written as they are
        _write_binary_maps(out, coco, split, "gt" if source == "gt" else "box")
        settings = BINARY
    stats = {"maps_wall_seconds_this_run": round(time.perf_counter() - start, 1)}
    return write_labels(out, coco, split.images, settings, adapter.class_names, bbam_settings, stats)


def _train_config(kind: str, labels: Path, val: Split, val_labels: Path, iters: int, work_dir: Path,
                  checkpoint: Path, seed: int, seed_threshold: float | None = None) -> str:
    """A config over the label writer's ready config: schedule, seed, init from the detector's
    ``checkpoint`` and val split with true masks (the shipped configs train only, so their val
    entries are None and get replaced)."""
    checkpoint = str(checkpoint)
    val_layout = RunLayout(val_labels)
    common = f"""randomness = dict(seed={seed})
val_cfg = dict(_delete_=True, type='ValLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval={iters}, max_keep_ckpts=1),
                     logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False))
work_dir = {str(work_dir)!r}
"""
    if kind == "seg":
        meta = json.loads(val_layout.seg_classes.read_text())
        with _CONFIG_LOCK:
            val_cfg = Config.fromfile(val_layout.seg_config, import_custom_modules=False)
        img_suffix = val_cfg.train_dataloader.dataset.img_suffix
        return f"""_base_ = {str(RunLayout(labels).seg_config)!r}
# the detector's backbone and FPN as initialisation
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint={checkpoint!r}, prefix='backbone.')),
             neck=dict(init_cfg=dict(type='Pretrained', checkpoint={checkpoint!r}, prefix='neck.')))
val_dataloader = dict(_delete_=True, batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='BaseSegDataset', data_root='', reduce_zero_label=False, img_suffix={img_suffix!r},
        seg_map_suffix='.png', ann_file={str(val_layout.seg_split)!r},
        data_prefix=dict(img_path={str(val_layout.seg_images_dir)!r},
                         seg_map_path={str(val_layout.seg_labels_dir)!r}),
        metainfo=dict(classes={tuple(meta['classes'])!r}, palette={meta['palette']!r}),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=False),
                  dict(type='PackSegInputs')]))
val_evaluator = dict(_delete_=True, type='IoUMetric', iou_metrics=['mIoU'])
# a short schedule from the detector's weights: a larger rate than the shipped config's 0.01
optim_wrapper = dict(optimizer=dict(lr=0.02))
train_cfg = dict(type='IterBasedTrainLoop', max_iters={iters}, val_interval={_val_interval(iters)})
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end={iters}, by_epoch=False)]
""" + common
    classes = tuple(json.loads(val_layout.seg_classes.read_text())["classes"][1:])
    seeding = "" if seed_threshold is None else \
        f"model = dict(roi_head=dict(mask_head=dict(seed_threshold={seed_threshold!r})))  # seeds grow into the band\n"
    return f"""_base_ = {str(RunLayout(labels).coco_config)!r}
load_from = {checkpoint!r}  # backbone, FPN, RPN and box head of the detector; the mask head is new
{seeding}val_dataloader = dict(_delete_=True, batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CocoDataset', data_root='', test_mode=True, ann_file={str(val.ann)!r},
        data_prefix=dict(img={str(val.images) + '/'!r}), metainfo=dict(classes={classes!r}),
        pipeline={{{{_base_.test_pipeline}}}}))
val_evaluator = dict(_delete_=True, type='CocoMetric', ann_file={str(val.ann)!r}, metric=['segm'])
train_cfg = dict(type='IterBasedTrainLoop', max_iters={iters}, val_interval={_val_interval(iters)})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end={max(1, iters // 10)}),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end={iters}, milestones=[{max(1, iters * 4 // 5)}], gamma=0.1),
]
""" + common


def _val_interval(iters: int) -> int:
    """Validation runs ``VAL_POINTS`` times per training run, so the table can show whether it converged."""
    return max(1, iters // VAL_POINTS)


def _val_records(work_dir: Path) -> list[dict]:
    """The validation records mmengine logged under ``work_dir``, in order of iteration."""
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    val = [r for r in records if any(k in r for k in ("mIoU", "coco/segm_mAP"))]
    if not val:
        raise RuntimeError(f"no validation result under {work_dir}: see its log")
    by_step = {r.get("step", 0): r for r in val}  # a resumed run may validate a step again: the later one counts
    return [by_step[step] for step in sorted(by_step)]


def train(kind: str, labels: Path, val: Split, val_labels: Path, iters: int, run_dir: Path,
          checkpoint: Path, seed: int, seed_threshold: float | None = None, threads: int | None = None) -> dict:
    """One ``mim train`` run; returns its metrics and minutes. A finished run is reused only when
    its inputs are the same (:func:`training_key`): other labels, iterations or a retrained
    detector in the same ``--out`` train anew. An interrupted run with the same inputs resumes
    from its last checkpoint (saved at every validation), so a stopped benchmark loses at most a
    quarter of a run. ``threads``: the run's CPU threads (``OMP_NUM_THREADS``; default: as the
    environment sets them)."""
    result_file = run_dir / "result.json"
    key_file = run_dir / "key"
    work_dir = run_dir / "work_dir"
    config_text = _train_config(kind, labels.resolve(), Split(val.ann.resolve(), val.images.resolve()),
                                val_labels.resolve(), iters, work_dir.resolve(), checkpoint.resolve(), seed,
                                seed_threshold)
    key = training_key(kind, config_text, labels, checkpoint)
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        if result.get("key") == key:
            print(f"[{run_dir.name}] reused (same config, labels and detector)", flush=True)
            return result
    resume = key_file.is_file() and key_file.read_text() == key and _ready_to_resume(work_dir, iters)
    if not resume:  # an outdated run, or one stopped before its first checkpoint, restarts from scratch
        result_file.unlink(missing_ok=True)
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        (run_dir / "config.py").write_text(config_text)
        key_file.write_text(key)
    earlier_minutes = _logged_minutes(work_dir)
    command = [str(Path(sys.executable).parent / "mim"), "train", "mmseg" if kind == "seg" else "mmdet",
               str(run_dir / "config.py"),
               # how often the run is saved does not change what it learns, so it stays out of the key
               "--cfg-options", f"default_hooks.checkpoint.interval={_val_interval(iters)}",
               "default_hooks.checkpoint.max_keep_ckpts=2",
               *(["--resume"] if resume else [])]
    print(f"[{run_dir.name}] {' '.join(command[1:3])} ({iters} iterations"
          f"{', resumed from ' + (work_dir / 'last_checkpoint').read_text().strip() if resume else ''})", flush=True)
    start = time.perf_counter()
    with open(run_dir / "train.log", "a" if resume else "w") as log:
        env = os.environ if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    minutes = earlier_minutes + (time.perf_counter() - start) / 60
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}); see {run_dir / 'train.log'}")
    records = _val_records(work_dir)
    scalars = records[-1]
    if kind == "seg":
        result = {"semantic_miou": scalars["mIoU"] / 100, "seg_train_minutes": round(minutes, 2),
                  "semantic_miou_curve": [[r.get("step"), r["mIoU"] / 100] for r in records],
                  "semantic_class_iou": _class_ious(work_dir)}
    else:
        result = {"mask_ap": scalars["coco/segm_mAP"], "mask_ap50": scalars["coco/segm_mAP_50"],
                  "mask_ap50_curve": [[r.get("step"), r["coco/segm_mAP_50"]] for r in records],
                  "inst_train_minutes": round(minutes, 2)}
    if resume:
        result["resumed"] = True
    write_json_atomic(result_file, {**result, "key": key})
    return result


def _ready_to_resume(work_dir: Path, iters: int) -> bool:
    """Whether a stopped run has a checkpoint to resume from, with mmengine's ``last_checkpoint``
    pointing at it. One saved at the last iteration is not enough (a run stopped during its last
    validation would resume into no training and no validation): the pointer is moved to the one
    before it, so the last validation runs again."""
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        return False
    if Path(pointer.read_text().strip()).name == f"iter_{iters}.pth":
        earlier = [f for it, f in _checkpoints(work_dir).items() if it < iters]
        if not earlier:
            return False
        pointer.write_text(str(earlier[-1].resolve()))
    return Path(pointer.read_text().strip()).is_file()


def _logged_minutes(work_dir: Path) -> float:
    """Minutes that earlier, interrupted invocations of a run trained: from each log's start (its
    folder's name, mmengine's local timestamp) to its last write."""
    minutes = 0.0
    for log in work_dir.glob("*/*.log"):
        try:
            started = time.mktime(time.strptime(log.parent.name, "%Y%m%d_%H%M%S"))
        except ValueError:  # not a folder mmengine made
            continue
        minutes += max(0.0, log.stat().st_mtime - started) / 60
    return minutes


def _class_ious(work_dir: Path) -> dict[str, float]:
    """Each class's IoU at the last validation: mmseg's ``IoUMetric`` logs it as a table only."""
    logs = sorted(work_dir.glob("*/*.log"))
    text = logs[-1].read_text() if logs else ""
    table = text.rsplit("per class results:", 1)[-1] if "per class results:" in text else ""
    ious = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) >= 2 and cells[0] != "Class":
            try:
                iou = float(cells[1]) / 100
            except ValueError:
                continue
            if not math.isnan(iou):  # nan: the class is in neither the val masks nor the predictions
                ious[cells[0]] = round(iou, 4)
    return ious


def training_key(kind: str, config_text: str, labels: Path, checkpoint: Path) -> str:
    """A hash of everything a training run reads: its config (iterations, seed, val split, paths),
    the label files it trains on and the detector's weights it starts from."""
    layout = RunLayout(labels)
    if kind == "seg":
        files = [layout.seg_split, *sorted(layout.seg_labels_dir.glob("*.png"))]
    else:
        files = [layout.coco_instances]
    digest = hashlib.sha256(config_text.encode())
    for path in [*files, checkpoint]:
        digest.update(path.name.encode() + b"\0" + file_digest(path).encode())
    return digest.hexdigest()[:16]


METRICS = ("semantic_miou", "mask_ap", "mask_ap50")


def summarise(rows: list[dict]) -> list[dict]:
    """Per label source: each metric's mean over seeds and its spread (max - min), and each class's
    semantic IoU's mean, in rows' order."""
    sources = list(dict.fromkeys(r["label_source"] for r in rows))
    out = []
    for source in sources:
        mine = [r for r in rows if r["label_source"] == source]
        entry = {"label_source": source, "seeds": [r["seed"] for r in mine],
                 "label_instance_miou": mine[0]["label_instance_miou"]}
        for key in METRICS:
            if any(key not in r for r in mine):  # that model was not trained (--models)
                continue
            values = [r[key] for r in mine]
            entry[key], entry[f"{key}_spread"] = float(np.mean(values)), float(np.max(values) - np.min(values))
        by_class = [r.get("semantic_class_iou", {}) for r in mine]
        entry["semantic_class_iou"] = {name: float(np.mean([c[name] for c in by_class if name in c]))
                                       for name in dict.fromkeys(n for c in by_class for n in c)}
        out.append(entry)
    return out


def write_table(rows: list[dict], meta: dict, path: Path) -> str:
    """``pipeline_NAME.md``: the mean and spread over seeds per label source, then each run; returns the text."""
    lines = [f"End-to-end pipeline benchmark, {meta['name']}, {meta['device']}, {meta['date']}: "
             f"{meta['num_train']} train images, {meta['num_val']} val images, "
             f"{meta['seg_iters']} Semantic FPN / {meta['inst_iters']} Mask R-CNN iterations, seeds "
             f"{', '.join(map(str, meta['seeds']))}, {sum(r['train_minutes'] for r in rows):.0f} min of training "
             f"in all (this invocation {meta['wall_minutes']:.0f} min; finished runs are reused).", "",
             "Mean over seeds, with the spread (max - min) in brackets:", ""]
    summary = summarise(rows)
    lines += markdown_table(
        ["label source", "label mIoU (train)", "semantic mIoU", "mask AP", "mask AP50"],
        [[e["label_source"], f"{e['label_instance_miou']:.3f}",
          *(f"{e[k]:.3f} ({e[k + '_spread']:.3f})" if k in e else NOT_TRAINED for k in METRICS)]
         for e in summary])
    gt = next((e for e in summary if e["label_source"] == "gt"), None)
    if gt:
        shares = [(key, name) for key, name in (("semantic_miou", "mIoU"), ("mask_ap50", "AP50")) if key in gt]
        share = lambda value, reference: f"{value / reference:.0%}" if reference > 0 else "n/a"  # noqa: E731
        lines += ["", "Share of the true-mask models' mean scores: " + "; ".join(
            f"{e['label_source']} " + ", ".join(f"{share(e[key], gt[key])} {name}" for key, name in shares)
            for e in summary if e is not gt)]
    classes = list(dict.fromkeys(c for e in summary for c in e["semantic_class_iou"]))
    if classes:  # which classes the semantic models lose: recognition or the labels
        lines += ["", "Semantic IoU per class at the end of training, mean over seeds:", ""]
        lines += markdown_table(["label source", *classes], [
            [e["label_source"], *(f"{e['semantic_class_iou'][c]:.3f}" if c in e["semantic_class_iou"] else NOT_TRAINED
                                  for c in classes)] for e in summary])
    curve = lambda points: " / ".join(f"{v:.3f}" for _, v in points)  # noqa: E731
    lines += ["", "Each run:", ""]
    lines += markdown_table(
        ["label source", "seed", "semantic mIoU", "mask AP", "mask AP50", "train minutes",
         "semantic mIoU during training", "mask AP50 during training"],
        [[r["label_source"], r["seed"], *(f"{r[k]:.3f}" if k in r else NOT_TRAINED for k in METRICS),
          f"{r['train_minutes']:.1f}", curve(r.get("semantic_miou_curve", [])), curve(r.get("mask_ap50_curve", []))]
         for r in rows])
    return write_markdown(path, lines)


NOT_TRAINED = "-"


def _label_quality(out: Path, ann_file: Path) -> float:
    """Instance mIoU of a source's train labels against the true masks (what the networks learn from)."""
    from bbam_captum.metrics.pseudo_labels import evaluate_pseudo_labels

    return float(evaluate_pseudo_labels(out, ann_file)["instance_miou"])


MODELS = ("seg", "inst")


def _parse_models(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models or set(models) - set(MODELS):
        raise argparse.ArgumentTypeError(f"models must be some of {','.join(MODELS)}, got {text!r}")
    return [m for m in MODELS if m in models]


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct integers >= 0, got {text!r}")
    return seeds


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


OWN_DATA = ("train_ann", "train_images", "val_ann", "val_images", "config", "checkpoint")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} instead of {FULL}")
    parser.add_argument("--sources", default=",".join(DEFAULT_SOURCES),
                        help="comma-separated subset of " + ",".join(SOURCES))
    parser.add_argument("--seeds", type=_parse_seeds, default=[0, 1], help="training seeds (default: 0,1)")
    parser.add_argument("--jobs", type=_positive_int, default=1, help="training runs at once (default: 1)")
    parser.add_argument("--num-train", type=int)
    parser.add_argument("--num-val", type=int)
    parser.add_argument("--iters", type=int, help="training iterations of both models (default: "
                        f"{FULL.seg_iters} Semantic FPN, {FULL.inst_iters} Mask R-CNN; quick: {QUICK.seg_iters})")
    parser.add_argument("--seg-iters", type=_positive_int, help="Semantic FPN's iterations (over --iters)")
    parser.add_argument("--inst-iters", type=_positive_int, help="Mask R-CNN's iterations (over --iters)")
    parser.add_argument("--models", type=_parse_models, default=list(MODELS),
                        help="comma-separated models to train: seg (Semantic FPN), inst (Mask R-CNN); default both")
    parser.add_argument("--bbam-steps", type=int, help="BBAM steps (default: BBAM's default)")
    parser.add_argument("--world", default="shapes", choices=sorted(WORLDS),
                        help="the world to draw the splits from; its detector explains them (default: shapes)")
    own = parser.add_argument_group("your own data (all six together, instead of --world)")
    own.add_argument("--train-ann", type=Path, help="COCO file of the images to label (boxes; masks unused)")
    own.add_argument("--train-images", type=Path, help="folder of the train images")
    own.add_argument("--val-ann", type=Path, help="COCO file with true masks to score the models on")
    own.add_argument("--val-images", type=Path, help="folder of the val images")
    own.add_argument("--config", type=Path, help="the detector's MMDetection config")
    own.add_argument("--checkpoint", type=Path, help="the detector's checkpoint")
    parser.add_argument("--name", help="name of the tables (pipeline_NAME.*; default: the world, or the train "
                        "file's stem)")
    args = parser.parse_args(argv)
    sources = [s for s in args.sources.split(",") if s]
    unknown = set(sources) - set(SOURCES)
    if unknown:
        parser.error(f"unknown label sources {sorted(unknown)}; expected some of {SOURCES}")
    given = [name for name in OWN_DATA if getattr(args, name) is not None]
    if given and len(given) < len(OWN_DATA):
        parser.error("your own data needs all of " + ", ".join("--" + n.replace("_", "-") for n in OWN_DATA)
                     + "; missing " + ", ".join("--" + n.replace("_", "-") for n in OWN_DATA if n not in given))
    for name in given:
        path = getattr(args, name)
        folder = name.endswith("images")
        if not (path.is_dir() if folder else path.is_file()):
            parser.error(f"--{name.replace('_', '-')} {path}: no such {'folder' if folder else 'file'}")
    needs_maps = (set(REUSE_BBAM_MAPS) | set(REUSE_BBAM_LABELS)) & set(sources) and "bbam" not in sources
    if needs_maps:  # bbam's maps and labels are made, but bbam is not trained on
        sources.insert(0, "bbam")
    if set(SELF_TRAINED) & set(sources) and "bbam" not in sources:  # the teacher is bbam's Mask R-CNN
        sources.insert(0, "bbam")
    base = QUICK if args.quick else FULL
    scale = Scale(args.num_train or base.num_train, args.num_val or base.num_val,
                  args.seg_iters or args.iters or base.seg_iters, args.inst_iters or args.iters or base.inst_iters)
    out = Path(args.out)
    info = start_run("benchmarks.pipeline", argv)
    if given:
        name = args.name or args.train_ann.stem
        work = out / "work" / name
        train_split, val_split = Split(args.train_ann, args.train_images), Split(args.val_ann, args.val_images)
        config, checkpoint = args.config, args.checkpoint
        scale = Scale(len(json.loads(args.train_ann.read_text())["images"]),
                      len(json.loads(args.val_ann.read_text())["images"]), scale.seg_iters, scale.inst_iters)
    else:
        name = args.name or args.world
        work = out / "work" / args.world
        train_split = world_split(work / "data" / "train", scale.num_train, TRAIN_SEED, args.world)
        val_split = world_split(work / "data" / "val", scale.num_val, VAL_SEED, args.world)
        config, checkpoint = detector_files(args.world)
    model = load_detector(config, checkpoint)
    bbam_settings = BBAMSettings(steps=args.bbam_steps) if args.bbam_steps else BBAMSettings()
    val_labels = work / "labels" / "val_gt"
    make_labels("gt", val_labels, val_split, model, bbam_settings)
    qualities = {}
    for source in sources:  # every source's labels first, then the trainings (in parallel with --jobs)
        if source in SELF_TRAINED:  # after the teacher's training
            continue
        labels = work / "labels" / ("bbam" if source in REUSE_BBAM_LABELS else source)
        if source in REUSE_BBAM_MAPS:
            labels.mkdir(parents=True, exist_ok=True)
            if not RunLayout(labels).maps_dir.exists():
                RunLayout(labels).maps_dir.symlink_to(RunLayout(work / "labels" / "bbam").maps_dir.resolve())
        if source not in REUSE_BBAM_LABELS:
            print(f"[{source}] labels", flush=True)
            summary = make_labels(source, labels, train_split, model, bbam_settings)
            if summary["failures"]:
                raise RuntimeError(f"{source}: labels failed for {summary['failures'][:3]}")
        if not (needs_maps and source == "bbam"):
            qualities[source] = (labels, _label_quality(labels, train_split.ann))
    runs = work / "runs"
    jobs = {}  # (source, seed, kind) -> the arguments of train()

    # a schedule other than the full scale's keeps its own runs, so the two do not retrain each other
    seg_suffix = "" if scale.seg_iters == FULL.seg_iters else f"_i{scale.seg_iters}"
    inst_suffix = "" if scale.inst_iters == FULL.inst_iters else f"_i{scale.inst_iters}"

    def add_jobs(source: str, labels: Path, seeds: list[int]) -> None:
        for seed in seeds:
            seeded = source in REUSE_BBAM_LABELS
            if "seg" in args.models:
                jobs[source, seed, "seg"] = ("seg", labels, val_split, val_labels, scale.seg_iters,
                                             runs / f"{'bbam' if seeded else source}_seg_s{seed}{seg_suffix}",
                                             checkpoint, seed)
            if "inst" in args.models:
                jobs[source, seed, "inst"] = ("inst", labels, val_split, val_labels, scale.inst_iters,
                                              runs / f"{source}_inst_s{seed}{inst_suffix}", checkpoint, seed,
                                              SEED_THRESHOLD if seeded else None)

    for source, (labels, _) in qualities.items():
        add_jobs(source, labels, args.seeds)
    self_sources = [s for s in sources if s in SELF_TRAINED]
    bbam_labels = work / "labels" / "bbam"

    def teacher_job(labels: Path, run_name: str) -> tuple:
        return ("inst", labels, val_split, val_labels, scale.inst_iters, runs / run_name, checkpoint, TEACHER_SEED)

    teachers: dict[str, dict[int | None, tuple]] = {}  # source -> {half it labels (None: all): teacher job}
    if "bbam_self" in self_sources:
        teachers["bbam_self"] = {None: teacher_job(bbam_labels, f"bbam_inst_s{TEACHER_SEED}{inst_suffix}")}
    if "bbam_cross" in self_sources:
        items = read_coco(train_split.ann, MMDetTwoStageAdapter(model).class_names).items
        trained = {half: write_half(bbam_labels, {i.image_id for i in half_items(items, half)},
                                    work / "labels" / f"bbam_half{half}") for half in HALVES}
        teachers["bbam_cross"] = {
            half: teacher_job(trained[1 - half], f"bbam_half{1 - half}_inst_s{TEACHER_SEED}{inst_suffix}")
            for half in HALVES}
    # the runs at once share the cores: each with a thread per core, two runs on 2 cores trained
    # 6-10 times slower than with one thread each (Semantic FPN 2.6 s an iteration against
    # 0.26 s, Mask R-CNN 4.3 s against 0.68 s): their threads wait on each other's
    threads = None if "OMP_NUM_THREADS" in os.environ else max(1, len(os.sched_getaffinity(0)) // args.jobs)
    unique = {job[5]: job for job in jobs.values()}  # bbam_seeded shares bbam's semantic runs
    for by_half in teachers.values():
        unique.update({job[5]: job for job in by_half.values()})
    results = {}
    with ThreadPoolExecutor(args.jobs) as pool:  # each run is a mim subprocess
        results.update(zip(unique, pool.map(lambda job: train(*job, threads=threads), unique.values())))
        for source in self_sources:  # the teachers have trained: their masks are the labels
            labels = work / "labels" / source
            runs_by_half = {half: job[5] for half, job in teachers[source].items()}
            print(f"[{source}] labels from {', '.join(r.name for r in runs_by_half.values())}", flush=True)
            make_self_labels(labels, train_split, runs_by_half, MMDetTwoStageAdapter(model).class_names,
                             bbam_settings)
            qualities[source] = (labels, _label_quality(labels, train_split.ann))
            add_jobs(source, labels, args.seeds)
        later = {job[5]: job for job in jobs.values() if job[5] not in results}
        results.update(zip(later, pool.map(lambda job: train(*job, threads=threads), later.values())))
    rows = []
    for source, (_, quality) in qualities.items():
        for seed in args.seeds:
            row = {"label_source": source, "seed": seed, "label_instance_miou": quality}
            for kind in args.models:
                row.update(results[jobs[source, seed, kind][5]])
            row["train_minutes"] = row.get("inst_train_minutes", 0.0) + (
                0.0 if source in REUSE_BBAM_LABELS else row.get("seg_train_minutes", 0.0))
            rows.append(row)
    meta = {**asdict(scale), "name": name, "seeds": args.seeds, **info.meta(), "wall_minutes": info.seconds() / 60,
            "runs_at_once": args.jobs, "threads_per_run": os.environ.get("OMP_NUM_THREADS", str(threads)),
            "bbam_settings": asdict(bbam_settings), "label_settings": asdict(LabelSettings())}
    stem = f"pipeline_{name}"
    write_json_atomic(out / f"{stem}.json", [dict(r, device=info.device) for r in rows], indent=1)
    write_json_atomic(out / f"{stem}_meta.json", meta, indent=1)
    print(write_table(rows, meta, out / f"{stem}.md"))


if __name__ == "__main__":
    main()
