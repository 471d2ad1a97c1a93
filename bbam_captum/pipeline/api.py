"""The pipeline from Python, for any detector BBAM accepts: :func:`explain` one image and
:func:`generate_labels` for every box of a COCO file.

The model is an MMDetection two-stage detector, a torchvision Faster R-CNN / Mask R-CNN,
an adapter (e.g. ``TorchvisionRCNNAdapter(model, class_names=...)``) or a ready
:class:`~bbam_captum.BBAM`. ``bbam-captum explain`` and ``bbam-captum generate`` run these
functions after loading the detector their options name (``--config``/``--checkpoint``, or
``--torchvision`` with ``--checkpoint``).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..attr import BBAM, BBAMSettings, BoxRecord
from ..detectors.base import DetectorAdapter
from ..detectors.identity import detector_digest
from ..errors import InputError
from ..io.images import read_image
from ..io.layout import RunLayout
from ..labels import LabelSettings
from ..utils.atomic import write_json_atomic
from ..utils.deprecation import renamed_argument
from .coco_input import CategoryMismatchError, read_coco
from .generate import compute_maps, run_fingerprint
from .outputs import check_generate_inputs, check_not_an_input
from .writers import write_labels

__all__ = ["Explanation", "explain", "generate_labels"]


@dataclass
class Explanation:
    """BBAM's maps for the boxes of one image.

    Attributes:
        boxes (Tensor[K, 4]): the boxes explained, image pixels.
        maps (Tensor[K, 1, H, W]): one map per box, values in [0, 1].
        records: one :class:`~bbam_captum.BoxRecord` per box.
        labels: per box, its class name (and the detection score for detections).
        scores (Tensor[K] or None): detection scores; None for given boxes.
    """

    boxes: Tensor
    maps: Tensor
    records: list[BoxRecord]
    labels: list[str]
    scores: Tensor | None


def _as_bbam(model: torch.nn.Module | DetectorAdapter | BBAM) -> BBAM:
    return model if isinstance(model, BBAM) else BBAM(model)


def _bbam_settings(settings: BBAMSettings | None, overrides: dict) -> BBAMSettings:
    """``settings`` (default: ``BBAMSettings()``) with the fields that ``overrides`` names changed."""
    return (BBAMSettings() if settings is None else settings).override(**overrides)


def explain(model: torch.nn.Module | DetectorAdapter | BBAM, image: Tensor | str | Path, boxes: Tensor | None = None,
            score_thr: float = 0.5, out: str | Path | None = None, title: str | None = None,
            show_progress: bool = False, baselines: Tensor | Sequence[float] | None = None,
            settings: BBAMSettings | None = None, baseline: Tensor | Sequence[float] | None = None,
            **overrides) -> Explanation:
    """Explains the detector's detections on one image (or the given boxes) with BBAM.

    Args:
        model: a detector BBAM accepts (see the module's docstring).
        image (Tensor or path): ``(3, H, W)`` RGB 0..255, or an image file.
        boxes (Tensor, optional): ``(K, 4)`` boxes ``(x1, y1, x2, y2)`` to explain, each for
            the detector's top class; None: the detector's detections scoring ``score_thr``
            or more, each for its detected class. Default: None
        score_thr (float, optional): detection score threshold. Default: 0.5
        out (str or Path, optional): where to write a figure of the image, its boxes and
            their maps (any format matplotlib writes). Default: no figure
        title (str, optional): the figure's title. Default: "BBAM"
        show_progress (bool, optional): a progress bar over BBAM's steps. Default: False
        baselines (Tensor or sequence of 3 floats, optional): see :meth:`bbam_captum.BBAM.attribute`.
            Default: the detector's pixel mean
        settings (BBAMSettings, optional): BBAM's settings. Default: ``BBAMSettings()``
        baseline: deprecated name of ``baselines``.
        **overrides: fields of :class:`~bbam_captum.BBAMSettings` (``steps``, ``l1_coef``, ...)
            that override those of ``settings``.

    Returns:
        :class:`Explanation`; with no detection above ``score_thr`` it holds no box (and no
        figure is written).
    """
    baselines = renamed_argument(baselines, baseline, "baselines", "baseline", "explain", stacklevel=3)
    bbam_settings = _bbam_settings(settings, overrides)
    bbam = _as_bbam(model)
    if not isinstance(image, Tensor):
        if out is not None:
            check_not_an_input(Path(out), [Path(image)])
        image = read_image(Path(image))
    scores = None
    if boxes is None:
        det = bbam.adapter.detect(image, score_thr=score_thr)
        boxes, target, scores = det.boxes, det.labels, det.scores
    else:
        boxes, target = torch.as_tensor(boxes, dtype=torch.float32), None
        boxes = boxes[None] if boxes.dim() == 1 else boxes
    if boxes.shape[0] == 0:
        return Explanation(boxes, torch.zeros(0, 1, *image.shape[-2:]), [], [], scores)
    maps, records = bbam.attribute(image, boxes, target=target, baselines=baselines, settings=bbam_settings,
                                   show_progress=show_progress, return_records=True)
    names = bbam.adapter.class_names
    labels = [names[r.target] + (f" {float(scores[i]):.2f}" if scores is not None else "")
              for i, r in enumerate(records)]
    if out is not None:
        from ..visualization import explanation_figure

        fig = explanation_figure(image, boxes, labels, maps, title=title or "BBAM")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
    return Explanation(boxes.cpu(), maps.cpu(), records, labels, None if scores is None else scores.cpu())


def generate_labels(model: torch.nn.Module | DetectorAdapter | BBAM, ann_file: str | Path, img_dir: str | Path,
                    out: str | Path, labels: LabelSettings | None = None, force: bool = False,
                    show_progress: bool = True, run_info: dict | None = None,
                    categories_by_order: bool = False, label_workers: int = 1,
                    settings: BBAMSettings | None = None, batch_images: int = 1, **overrides) -> dict | None:
    """BBAM pseudo labels for every box of a COCO file: what ``bbam-captum generate`` writes.

    Writes ``out/maps/`` (the raw maps, one ``.npz`` per image), ``out/mmseg/`` and
    ``out/coco/`` (labels with configs for ``mim train``), ``out/run.json`` (what
    ``bbam-captum labels`` and ``report`` read) and ``out/summary.json``. A rerun
    recomputes only images whose maps key changed (image, boxes, settings, detector: see
    :func:`~bbam_captum.detectors.detector_digest`, the same for the command line's runs).
    Under ``torch.distributed`` each rank takes a share of the images and rank 0 writes
    the labels after all ranks are done.

    Args:
        model: a detector BBAM accepts (see the module's docstring). Its class names must
            cover the COCO categories' names (see :func:`bbam_captum.pipeline.read_coco`).
        ann_file (str or Path): COCO instance file with boxes (segmentations are ignored).
        img_dir (str or Path): folder of the images it names.
        out (str or Path): output folder.
        labels (LabelSettings, optional): how labels are made from the maps. Default:
            ``LabelSettings()``
        force (bool, optional): recompute every image's maps. Default: False
        show_progress (bool, optional): a progress bar over images. Default: True
        run_info (dict, optional): extra entries for ``run.json``. Default: None
        categories_by_order (bool, optional): where the category names are not the class
            names, pair categories (by id) with classes by order, if their counts agree.
            Default: False (such a file is refused)
        label_workers (int, optional): processes that make the labels from the maps (rank
            0's, after the maps; spawned, so a script that asks for more than one runs its
            work under ``if __name__ == "__main__":``). Default: 1
        settings (BBAMSettings, optional): BBAM's settings, recorded in ``run.json`` and hashed
            into the maps' keys. Default: ``BBAMSettings()``
        batch_images (int, optional): images whose boxes BBAM optimises together (the same maps
            to float rounding; fewer, fuller forwards where their windows share sizes, see
            ``window_padding``: for a GPU). Default: 1
        **overrides: fields of :class:`~bbam_captum.BBAMSettings` (``steps``, ``l1_coef``,
            ``context``, ``seed``, ...) that override those of ``settings``.

    Returns:
        The summary (as in ``summary.json``: counts, settings, timings, failures) on rank 0;
        None on the other ranks.

    Raises:
        InputError: see :func:`~bbam_captum.pipeline.outputs.check_generate_inputs`, and COCO
            categories that do not match the detector's classes by name (nor, with
            ``categories_by_order``, by count).
    """
    bbam_settings = _bbam_settings(settings, overrides)
    if label_workers < 1:
        raise InputError(f"label_workers must be >= 1, got {label_workers}")
    if batch_images < 1:
        raise InputError(f"batch_images must be >= 1, got {batch_images}")
    check_generate_inputs(ann_file, img_dir, out)
    img_dir, out = Path(img_dir), Path(out)
    labels = LabelSettings() if labels is None else labels
    bbam = _as_bbam(model)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank, world_size = ((torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed
                        else (0, 1))
    try:
        coco = read_coco(ann_file, bbam.adapter.class_names, by_order=categories_by_order)
    except CategoryMismatchError as err:
        raise err.asking_for("categories_by_order=True") from None
    digest = detector_digest(bbam)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = compute_maps(bbam, coco, img_dir, out, bbam_settings, rank, world_size, show_progress=show_progress,
                        detector_digest=digest, force=force, batch_images=batch_images)
    if world_size > 1:
        torch.distributed.barrier()
    if rank != 0:
        return None
    info = {"ann": str(Path(ann_file).resolve()), "img_dir": str(img_dir.resolve()), **(run_info or {}),
            "bbam_settings": asdict(bbam_settings), "detector_digest": digest, "bbam_extensions": bbam.extensions,
            "class_names": list(bbam.adapter.class_names), "categories_by_order": categories_by_order,
            "world_size": world_size}
    write_json_atomic(RunLayout(out).run_file, info, indent=1)
    run_stats = {"images_computed_this_run": done,
                 "maps_wall_seconds_this_run": round(time.perf_counter() - start, 1)}
    return write_labels(out, coco, img_dir, labels, bbam.adapter.class_names, bbam_settings, run_stats,
                        fingerprint=run_fingerprint(bbam_settings, digest, bbam.extensions), workers=label_workers,
                        show_progress=show_progress)
