"""One round of self-training: the masks that a Mask R-CNN trained on a run's labels gives for the
run's own boxes become the next labels.

A model trained on many pseudo masks averages their errors out: where one label missed part of
an object, the model has seen that class's other objects. Its masks for the same boxes (the box
given, not detected: no object is lost or added) are written as a new run, with the rule of
:data:`SELF_TRAINING_LABELS`, which ``bbam-captum labels`` can change afterwards.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..detectors.identity import detector_digest
from ..detectors.mmdet_two_stage import MMDetTwoStageAdapter
from ..errors import InputError
from ..io.images import read_image
from ..io.layout import RunLayout
from ..labels import LabelSettings
from ..utils.atomic import write_json_atomic
from .coco_input import CocoInput, read_coco
from .generate import save_maps
from .outputs import check_output_folder
from .relabelling import read_run
from .writers import write_labels

__all__ = ["SELF_TRAINING_LABELS", "model_maps", "self_training_labels"]

# The default chain, the model's masks in place of BBAM's maps: on photo's train images it gave instance
# mIoU 0.845 where the model's own decision (probability 0.5) gave 0.642 and BBAM's labels 0.837
# (benchmarks/results/self_labels.md): a small model's masks are blobs that the CRF and Eq. 4 fit
# to the image, as they fit BBAM's maps.
SELF_TRAINING_LABELS = LabelSettings()


def model_maps(adapter: MMDetTwoStageAdapter, coco: CocoInput, img_dir: Path, out: Path,
               show_progress: bool = False) -> int:
    """Writes ``out/maps/``: for every box of ``coco``, the mask probability the adapter's mask head
    gives for it (:meth:`~bbam_captum.detectors.MMDetTwoStageAdapter.box_masks`). Images whose maps
    file exists are kept; returns how many were computed."""
    layout = RunLayout(out)
    layout.maps_dir.mkdir(parents=True, exist_ok=True)
    done = 0
    for item in tqdm(coco.items, desc="model masks", unit="img", disable=not show_progress):
        if layout.maps_file(item.image_id).exists():
            continue
        start = time.perf_counter()
        image = read_image(img_dir / item.file_name)
        masks = adapter.box_masks(image, torch.from_numpy(item.boxes), torch.from_numpy(item.classes))
        save_maps(out, item, masks.numpy(), "[]", time.perf_counter() - start)
        done += 1
    return done


def self_training_labels(run: str | Path, model: torch.nn.Module, out: str | Path,
                         labels: LabelSettings | None = None, show_progress: bool = True) -> dict:
    """Labels for the boxes of the ``generate`` run in ``run`` from a Mask R-CNN trained on its labels.

    Args:
        run (str or Path): the output folder of ``generate`` (its ``run.json`` names the COCO
            file, the images and the class names).
        model (mmdet.models.TwoStageDetector): the trained model, with a mask head and the run's
            classes in the run's order (e.g. ``load_detector(work_dir/config.py, iter_N.pth)``).
        out (str or Path): the new run's folder (not ``run``): ``maps/`` (the model's masks),
            ``mmseg/``, ``coco/``, ``run.json`` (the run's, with ``teacher``) and ``summary.json``.
        labels (LabelSettings, optional): how labels are made from the masks. Default:
            :data:`SELF_TRAINING_LABELS`
        show_progress (bool, optional): progress bars over images. Default: True

    Returns:
        The summary, as in ``out/summary.json``.

    Raises:
        InputError: ``run`` has no readable ``run.json``; ``out`` is ``run``, or holds a
            ``generate`` run or maps of unknown origin; the model's classes are not the run's.
        UnsupportedDetectorError: the model has no mask head.
    """
    run, out = Path(run), Path(out)
    source = read_run(RunLayout(run))
    if out.resolve() == run.resolve():
        raise InputError(f"out {out} is the run itself: the new labels go to a folder of their own")
    check_output_folder(out)
    adapter = MMDetTwoStageAdapter(model)
    if adapter.class_names != source.class_names:
        raise InputError(f"the model's classes {list(adapter.class_names)} are not the run's "
                         f"{list(source.class_names)} ({RunLayout(run).run_file}): give the model trained on this "
                         "run's labels")
    teacher = {"run": str(run.resolve()), "detector_digest": detector_digest(adapter)}
    layout = RunLayout(out)
    if layout.run_file.is_file():
        earlier = read_run(layout).info
        if "teacher" not in earlier:
            raise InputError(f"out {out} holds a generate run ({layout.run_file}): the new labels go to a folder "
                             "of their own")
        if earlier["teacher"] != teacher:
            shutil.rmtree(layout.maps_dir, ignore_errors=True)  # masks of another model or run
    elif layout.maps_dir.is_dir() and any(layout.maps_dir.iterdir()):
        raise InputError(f"out {out} holds maps of an unknown run ({layout.maps_dir}): choose an empty folder")
    coco = read_coco(source.ann, source.class_names, by_order=source.categories_by_order)
    # first, so that maps left by a crash are known to be this model's; no detector_digest:
    # relabelling checks the maps by their annotation ids
    kept = {k: v for k, v in source.info.items() if k not in ("detector_digest", "bbam_extensions")}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(layout.run_file, {**kept, "teacher": teacher}, indent=1)
    start = time.perf_counter()
    done = model_maps(adapter, coco, source.img_dir, out, show_progress)
    stats = {"images_computed_this_run": done, "maps_wall_seconds_this_run": round(time.perf_counter() - start, 1)}
    return write_labels(out, coco, source.img_dir, SELF_TRAINING_LABELS if labels is None else labels,
                        source.class_names, source.bbam_settings, stats, show_progress=show_progress)
