"""Where everything of a ``generate`` run's output folder lies: one place for its names.

It sits in the io layer, below the metrics, the pipeline and the report, so that every part
that reads or writes the folder (``evaluate``'s metrics included) names its files the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def label_name(image_id: int) -> str:
    """The name (no suffix) of an image's label PNG and image link under ``OUT/mmseg``: its id
    only, so that no two images share one and no file name can point elsewhere."""
    return str(int(image_id))


@dataclass(frozen=True)
class RunLayout:
    """Every path of a run's output folder ``root``.

    ``generate`` writes ``maps/`` (one ``{image_id}.npz`` per image, with ``.failed.json`` and
    ``.time.json`` beside it), ``run.json``, ``summary.json``, ``mmseg/`` and ``coco/``;
    ``labels`` rewrites the last three, ``evaluate`` writes ``eval.json`` and ``report``
    ``report/``.

    Args:
        root (str or Path): the output folder.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # frozen: the one place that converts

    # ----------------------------------------------------------------- files at the top
    @property
    def run_file(self) -> Path:
        """What the run was made of (inputs, settings, detector): read by ``labels`` and ``report``."""
        return self.root / "run.json"

    @property
    def summary_file(self) -> Path:
        return self.root / "summary.json"

    @property
    def eval_file(self) -> Path:
        return self.root / "eval.json"

    # ----------------------------------------------------------------- maps
    @property
    def maps_dir(self) -> Path:
        return self.root / "maps"

    def maps_file(self, image_id: int) -> Path:
        return self.maps_dir / f"{image_id}.npz"

    def failure_file(self, image_id: int) -> Path:
        """Why an image has no maps."""
        return self.maps_dir / f"{image_id}.failed.json"

    def time_file(self, image_id: int) -> Path:
        """The seconds an image's maps took (apart, so that the maps file is byte-identical across runs)."""
        return self.maps_dir / f"{image_id}.time.json"

    # ----------------------------------------------------------------- MMSegmentation labels
    @property
    def mmseg_dir(self) -> Path:
        return self.root / "mmseg"

    @property
    def seg_labels_dir(self) -> Path:
        return self.mmseg_dir / "labels"

    @property
    def seg_images_dir(self) -> Path:
        return self.mmseg_dir / "images"

    def seg_label(self, image_id: int) -> Path:
        return self.seg_labels_dir / f"{label_name(image_id)}.png"

    def seg_image(self, image_id: int, suffix: str) -> Path:
        """The link to an image beside its label (``suffix``: see ``image_link_suffix`` of the writers)."""
        return self.seg_images_dir / f"{label_name(image_id)}{suffix}"

    @property
    def seg_split(self) -> Path:
        return self.mmseg_dir / "train.txt"

    @property
    def seg_classes(self) -> Path:
        return self.mmseg_dir / "classes.json"

    @property
    def seg_config(self) -> Path:
        return self.mmseg_dir / "config.py"

    @property
    def seg_work_dir(self) -> Path:
        return self.mmseg_dir / "work_dir"

    # ----------------------------------------------------------------- COCO labels
    @property
    def coco_dir(self) -> Path:
        return self.root / "coco"

    @property
    def coco_instances(self) -> Path:
        return self.coco_dir / "instances.json"

    @property
    def coco_config(self) -> Path:
        return self.coco_dir / "config.py"

    @property
    def coco_work_dir(self) -> Path:
        return self.coco_dir / "work_dir"

    # ----------------------------------------------------------------- review page
    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_index(self) -> Path:
        return self.report_dir / "index.html"

    @property
    def report_data(self) -> Path:
        return self.report_dir / "data.js"

    @property
    def report_thumbs(self) -> Path:
        return self.report_dir / "thumbs"

    @property
    def report_cache(self) -> Path:
        return self.report_dir / "cache"

    def report_cache_file(self, image_id: int) -> Path:
        return self.report_cache / f"{image_id}.json"

    # ----------------------------------------------------------------- what runs write
    @property
    def written_files(self) -> tuple[Path, ...]:
        """The files that ``generate``, ``labels`` and ``evaluate`` write at the top of the folder."""
        return (self.summary_file, self.run_file, self.eval_file)

    @property
    def written_parts(self) -> tuple[Path, ...]:
        """Everything those commands write at the top of the folder: no input may lie there."""
        return (self.maps_dir, self.mmseg_dir, self.coco_dir, *self.written_files)

    @property
    def written_folders(self) -> tuple[Path, ...]:
        """The folders (and those below them) that a run writes into."""
        return (self.maps_dir, self.mmseg_dir, self.seg_labels_dir, self.seg_images_dir, self.coco_dir,
                self.report_dir, self.report_thumbs, self.report_cache)
