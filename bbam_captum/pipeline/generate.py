"""``generate``: BBAM maps for every box of a COCO file, resumable and distributable.

Stage 1 (every rank): each image's maps go to ``OUT/maps/{image_id}.npz`` (float16,
compressed, with boxes, classes, annotation ids, per-box records and a key), written to a
temporary name and renamed, so a killed run leaves no half file. The key is a hash of what
made the maps (the image's bytes, boxes, classes, annotation ids, BBAM settings and
detector): a file whose key matches is not computed again, any other is. The time each
image took goes to ``{image_id}.time.json`` beside it, so that the maps file of a run
is byte-identical to that of any other run with the same inputs. With
``--launcher pytorch`` rank r takes images r, r + W, ...

Stage 2 (rank 0, after all ranks): labels are written from the maps alone
(:mod:`bbam_captum.pipeline.writers`), so other thresholds need no new BBAM run.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..attr import BBAM, BBAMSettings
from ..errors import InputError
from ..io.images import file_digest, read_image
from ..utils.atomic import atomic_open, write_json_atomic
from .coco_input import CocoInput, ImageItem

__all__ = ["compute_maps", "maps_key", "map_path", "npz_key", "save_maps", "stored_key"]

KEY_VERSION = 1  # part of every key: a change of the maps format invalidates old files


def map_path(out: Path, image_id: int) -> Path:
    return out / "maps" / f"{image_id}.npz"


def failure_path(out: Path, image_id: int) -> Path:
    return out / "maps" / f"{image_id}.failed.json"


def time_path(out: Path, image_id: int) -> Path:
    return out / "maps" / f"{image_id}.time.json"


def image_path(img_dir: Path, item: ImageItem) -> Path:
    return img_dir / item.file_name


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """An ``.npz`` that ``np.load`` reads, byte-identical for identical arrays: unlike
    ``np.savez_compressed`` it stamps every member with one fixed date."""
    with atomic_open(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def maps_key(item: ImageItem, image_digest: str, fingerprint: str) -> str:
    """What made an image's maps, hashed: its bytes, boxes, classes, annotation ids, and
    ``fingerprint`` (BBAM settings and detector, see :func:`run_fingerprint`)."""
    payload = json.dumps({"version": KEY_VERSION, "image": image_digest, "size": [item.height, item.width],
                          "boxes": item.boxes.tolist(), "classes": item.classes.tolist(),
                          "ann_ids": item.ann_ids.tolist(), "run": fingerprint}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def run_fingerprint(settings: BBAMSettings, detector_digest: str) -> str:
    """The part of every key shared by all images of a run: the settings given explicitly
    (:meth:`BBAMSettings.explicit`, as ``run.json`` records them) and the detector."""
    return json.dumps({"bbam": settings.explicit(), "detector": detector_digest}, sort_keys=True)


def npz_key(arrays: Mapping[str, np.ndarray]) -> str | None:
    """The key saved with a maps file's arrays (an open ``np.load`` file or a dict of its
    arrays); None when it has none."""
    key = arrays.get("key")
    return None if key is None else str(key)


def stored_key(path: Path) -> str | None:
    """The key of a maps file; None when it has none or cannot be read."""
    try:
        with np.load(path) as data:
            return npz_key(data)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def save_maps(out: Path, item: ImageItem, maps: np.ndarray, records_json: str, seconds: float | None = None,
              key: str = "") -> None:
    """Writes one image's maps file: maps (np.ndarray[K, H, W], stored float16) with the item's
    boxes, classes and annotation ids, per-box records (JSON) and its ``key``; ``seconds``,
    the time it took, goes to a file of its own."""
    save_npz_atomic(map_path(out, item.image_id), maps=maps.astype(np.float16), boxes=item.boxes,
                    classes=item.classes, ann_ids=item.ann_ids, records=np.array(records_json), key=np.array(key))
    if seconds is not None:
        write_json_atomic(time_path(out, item.image_id), {"seconds": seconds})


def explain_image(bbam: BBAM, item: ImageItem, img_dir: Path, out: Path, settings: BBAMSettings,
                  key: str = "") -> None:
    """Runs BBAM on one image's boxes and writes its maps file (or its failure file)."""
    start = time.perf_counter()
    try:
        image = read_image(image_path(img_dir, item))
        if tuple(image.shape[-2:]) != (item.height, item.width):
            raise InputError(f"image {item.file_name} is {image.shape[2]}x{image.shape[1]}, "
                             f"the COCO file says {item.width}x{item.height}")
    except InputError as err:
        map_path(out, item.image_id).unlink(missing_ok=True)  # maps of an earlier image content no longer hold
        write_json_atomic(failure_path(out, item.image_id), {"image_id": item.image_id, "reason": str(err)})
        return
    height, width = item.height, item.width
    if len(item.boxes):
        maps, records = bbam.attribute(image, torch.from_numpy(item.boxes), target=torch.from_numpy(item.classes),
                                       return_records=True, **settings.to_kwargs())
        maps_np = maps[:, 0].cpu().numpy()
        record_json = json.dumps([asdict(r) for r in records])
    else:
        maps_np, record_json = np.zeros((0, height, width), np.float16), "[]"
    save_maps(out, item, maps_np, record_json, time.perf_counter() - start, key)
    failure_path(out, item.image_id).unlink(missing_ok=True)


def expected_key(item: ImageItem, img_dir: Path, fingerprint: str) -> str | None:
    """The key the maps of ``item`` must carry now; None when its image cannot be read."""
    try:
        return maps_key(item, file_digest(image_path(img_dir, item)), fingerprint)
    except OSError:
        return None


def compute_maps(bbam: BBAM, coco: CocoInput, img_dir: Path, out: Path, settings: BBAMSettings | None = None,
                 rank: int = 0, world_size: int = 1, show_progress: bool = True, detector_digest: str = "",
                 force: bool = False) -> int:
    """Stage 1 for this rank's share of images; returns how many images it computed.

    ``settings``: BBAM's (default: ``BBAMSettings()``).

    An image is skipped when its maps file carries the key of its current inputs (see
    :func:`maps_key`); ``force`` recomputes every image.
    """
    settings = BBAMSettings() if settings is None else settings
    (out / "maps").mkdir(parents=True, exist_ok=True)
    fingerprint = run_fingerprint(settings, detector_digest)
    mine = coco.items[rank::world_size]
    keys = {item.image_id: expected_key(item, img_dir, fingerprint) for item in mine}
    todo = [item for item in mine if force or keys[item.image_id] is None
            or stored_key(map_path(out, item.image_id)) != keys[item.image_id]]
    if show_progress and len(todo) < len(mine):
        print(f"[rank {rank}] resuming: {len(mine) - len(todo)} of {len(mine)} images already done "
              "with these boxes, images and settings")
    bar = tqdm(todo, desc=f"BBAM maps (rank {rank})" if world_size > 1 else "BBAM maps", unit="img",
               disable=not show_progress, position=rank)
    for item in bar:
        bar.set_postfix(boxes=len(item.boxes))
        explain_image(bbam, item, img_dir, out, settings, keys[item.image_id] or "")
    return len(todo)
