"""Labels made again from a run's saved maps, with other label settings: no BBAM run."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..attr.settings import BBAMSettings
from ..errors import InputError
from ..io.layout import RunLayout
from ..labels.settings import LabelSettings
from .outputs import check_output_folder

__all__ = ["RunRecord", "read_run", "relabel"]


@dataclass(frozen=True)
class RunRecord:
    """What a run's ``run.json`` says: the whole of it (``info``) and the fields labelling needs."""

    info: dict
    ann: str
    img_dir: Path
    class_names: tuple[str, ...]
    bbam_settings: BBAMSettings
    extensions: dict[str, str]
    categories_by_order: bool


def read_run(layout: RunLayout) -> RunRecord:
    """Reads ``layout.run_file``.

    Raises:
        InputError: it is missing, or damaged (not JSON, a field missing or of the wrong kind).
    """
    run_file = layout.run_file
    if not run_file.is_file():
        raise InputError(f"{run_file} not found: is {layout.root} the output folder of a generate run?")
    try:
        info = json.loads(run_file.read_text())
        return RunRecord(info=info, ann=info["ann"], img_dir=Path(info["img_dir"]),
                         class_names=tuple(info["class_names"]), bbam_settings=BBAMSettings(**info["bbam_settings"]),
                         extensions={str(k): str(v) for k, v in dict(info.get("bbam_extensions") or {}).items()},
                         categories_by_order=bool(info.get("categories_by_order", False)))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise InputError(f"{run_file} is damaged ({err!r}): run generate again") from err


def relabel(out: str | Path, labels: LabelSettings | None = None, label_workers: int = 1,
            show_progress: bool = True) -> dict:
    """Remakes the labels of a :func:`~bbam_captum.pipeline.generate_labels` run (or of
    ``bbam-captum generate``) from its saved maps: what ``bbam-captum labels`` runs.

    Reads ``out/run.json`` (the run's COCO file, image folder, class names, BBAM settings and
    detector) and the maps under ``out/maps/``, and rewrites ``out/mmseg/``, ``out/coco/`` and
    ``out/summary.json`` as the run wrote them. A maps file must carry the key of its image's
    current inputs (image file, boxes, BBAM settings, detector), otherwise its image is reported
    stale and not labelled; maps of a run that recorded no detector are checked by their
    annotation ids only.

    Args:
        out (str or Path): the run's output folder.
        labels (LabelSettings, optional): how labels are made from the maps. Default:
            ``LabelSettings()``
        label_workers (int, optional): processes that make the labels (see
            :func:`~bbam_captum.pipeline.generate_labels`). Default: 1
        show_progress (bool, optional): a progress bar over images. Default: True

    Returns:
        The summary, as in ``summary.json``.

    Raises:
        InputError: ``out`` is not a folder that can be written, its ``run.json`` is missing
            or damaged, ``label_workers`` is below 1, or the run's COCO file cannot be read.
    """
    if label_workers < 1:
        raise InputError(f"label_workers must be >= 1, got {label_workers}")
    layout = RunLayout(out)
    check_output_folder(layout.root)
    run = read_run(layout)
    # imported after the checks, so that the command line answers an input error before torch loads
    from .coco_input import read_coco
    from .generate import run_fingerprint
    from .writers import write_labels

    coco = read_coco(run.ann, run.class_names, by_order=run.categories_by_order)
    fingerprint = (run_fingerprint(run.bbam_settings, run.info["detector_digest"], run.extensions)
                   if "detector_digest" in run.info else None)
    return write_labels(layout.root, coco, run.img_dir, LabelSettings() if labels is None else labels,
                        run.class_names, run.bbam_settings, fingerprint=fingerprint, workers=label_workers,
                        show_progress=show_progress)
