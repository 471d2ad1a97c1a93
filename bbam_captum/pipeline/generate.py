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
from ..io.layout import RunLayout
from ..ops import adaptive_stride
from ..utils.atomic import atomic_open, write_json_atomic
from .coco_input import CocoInput, ImageItem

__all__ = ["compute_maps", "map_cells", "maps_key", "npz_key", "read_maps_file", "recorded_image_digests",
           "recorded_seconds", "save_maps", "stored_image_digest", "stored_key"]

# part of every key: a change of the maps format, or of what the key holds, invalidates old files
# (2: every BBAM setting's value, defaults included; 1 held the settings given explicitly)
KEY_VERSION = 2
MAPS_ARRAYS = ("maps", "boxes", "classes", "ann_ids")  # what every maps file holds (the contract's arrays)


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


def run_fingerprint(settings: BBAMSettings, detector_digest: str, extensions: Mapping[str, str] | None = None) -> str:
    """The part of every key shared by all images of a run: every BBAM setting's value, defaults
    included (as ``run.json`` records them), the detector, and BBAM's extension points where they
    are not the method's own (:attr:`BBAM.extensions <bbam_captum.BBAM.extensions>`)."""
    run = {"bbam": asdict(settings), "detector": detector_digest}
    if extensions:  # absent for the method itself, so that its keys stay as they were
        run["extensions"] = dict(extensions)
    return json.dumps(run, sort_keys=True)


def npz_key(arrays: Mapping[str, np.ndarray]) -> str | None:
    """The key saved with a maps file's arrays (an open ``np.load`` file or a dict of its
    arrays); None when it has none."""
    key = arrays.get("key")
    return None if key is None else str(key)


def read_maps_file(path: Path) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """Every array of a maps file, each read in full so that damaged bytes anywhere show;
    or None and why the file cannot be used (missing, damaged, or lacking an array)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        return None, f"maps file {path} not found"
    # damaged bytes raise zlib.error, SyntaxError (the header's tokenizer), BadZipFile, EOFError,
    # ValueError, ... from np.load: whatever it is, the file is as good as missing
    except Exception as err:
        return None, f"maps file {path} cannot be read ({type(err).__name__}: {err})"
    missing = set(MAPS_ARRAYS) - arrays.keys()
    if missing:
        return None, f"maps file {path} lacks {sorted(missing)}"
    return arrays, None


def map_cells(arrays: Mapping[str, np.ndarray], height: int, width: int) -> np.ndarray:
    """Image pixels per mask cell of each map of a maps file (K,): the per-box strides its
    records hold, or, for maps written without them, the cells of BBAM's default stride rule."""
    boxes = arrays["boxes"]
    if "records" in arrays:
        records = json.loads(str(arrays["records"]))
        if len(records) == len(boxes) and all(isinstance(r, dict) and "stride" in r for r in records):
            return np.array([float(r["stride"]) for r in records])
    stride_range = BBAMSettings().stride_range
    return np.array([float(adaptive_stride(torch.as_tensor(box), height, width, stride_range)) for box in boxes])


def stored_key(path: Path) -> str | None:
    """The key of a maps file; None when it has none or cannot be read in full."""
    arrays, _ = read_maps_file(path)
    return None if arrays is None else npz_key(arrays)


def stored_image_digest(path: Path) -> str | None:
    """The sha256 of the image file that a maps file was made from (see :func:`save_maps`);
    None when the file is unreadable or older than this record."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["image_sha256"]) if "image_sha256" in data.files else None
    except Exception:  # damaged: as unreadable, see read_maps_file
        return None


def recorded_image_digests(out: Path) -> dict[int, str]:
    """The sha256 of each image file as its maps file recorded it, by image id (images whose
    maps file is missing, damaged or older than this record are left out)."""
    digests = {}
    for path in sorted(RunLayout(out).maps_dir.glob("*.npz")):
        digest = stored_image_digest(path) if path.stem.lstrip("-").isdigit() else None
        if digest:
            digests[int(path.stem)] = digest
    return digests


def save_maps(out: Path, item: ImageItem, maps: np.ndarray, records_json: str, seconds: float | None = None,
              key: str = "", image_digest: str = "") -> None:
    """Writes one image's maps file: maps (np.ndarray[K, H, W], stored float16) with the item's
    boxes, classes and annotation ids, per-box records (JSON), its ``key`` and the sha256 of
    its image file (which ``evaluate`` and ``report`` compare with the images they are shown);
    ``seconds``, the time it took, goes to a file of its own."""
    layout = RunLayout(out)
    save_npz_atomic(layout.maps_file(item.image_id), maps=maps.astype(np.float16), boxes=item.boxes,
                    classes=item.classes, ann_ids=item.ann_ids, records=np.array(records_json), key=np.array(key),
                    image_sha256=np.array(image_digest))
    if seconds is not None:
        write_json_atomic(layout.time_file(item.image_id), {"seconds": seconds})


def recorded_seconds(out: Path, image_id: int) -> float | None:
    """The time an image's maps took, as :func:`save_maps` recorded it; None where it recorded none."""
    timing = RunLayout(out).time_file(image_id)
    return json.loads(timing.read_text())["seconds"] if timing.exists() else None


def record_failure(out: Path, item: ImageItem, reason: str) -> None:
    """An image that cannot be explained: its failure file, and no maps of an earlier content."""
    layout = RunLayout(out)
    layout.maps_file(item.image_id).unlink(missing_ok=True)
    write_json_atomic(layout.failure_file(item.image_id), {"image_id": item.image_id, "reason": reason})


def explain_image(bbam: BBAM, item: ImageItem, img_dir: Path, out: Path, settings: BBAMSettings,
                  key: str = "", image_digest: str = "") -> None:
    """Runs BBAM on one image's boxes and writes its maps file (or its failure file)."""
    start = time.perf_counter()
    image = _read_item_image(item, img_dir, out)
    if image is None:
        return
    if len(item.boxes):
        try:
            maps, records = bbam.attribute(image, torch.from_numpy(item.boxes),
                                           target=torch.from_numpy(item.classes), settings=settings,
                                           return_records=True)
        except ValueError as err:  # what BBAM refuses of this image (e.g. too small): this image fails, not the run
            record_failure(out, item, f"image {item.file_name} cannot be explained: {err}")
            return
    else:
        maps, records = None, []
    _write_maps(out, item, maps, records, time.perf_counter() - start, key, image_digest)


def explain_images(bbam: BBAM, items: list[ImageItem], img_dir: Path, out: Path, settings: BBAMSettings,
                   keys: list[str], image_digests: list[str]) -> None:
    """:func:`explain_image` for several images whose boxes BBAM optimises together
    (:meth:`~bbam_captum.BBAM.attribute_images`); each image's time is the batch's shared
    equally. Where BBAM refuses one of them, each is explained alone, so that only it fails."""
    for item, key, digest in zip(items, keys, image_digests):
        if not len(item.boxes):  # nothing to optimise: written alone, out of the batch's time
            explain_image(bbam, item, img_dir, out, settings, key, digest)
    start = time.perf_counter()
    batch = []
    for item, key, digest in zip(items, keys, image_digests):
        if len(item.boxes) and (image := _read_item_image(item, img_dir, out)) is not None:
            batch.append((item, image, key, digest))
    if not batch:
        return
    try:
        results = bbam.attribute_images([image for _, image, _, _ in batch],
                                        [torch.from_numpy(item.boxes) for item, _, _, _ in batch],
                                        [torch.from_numpy(item.classes) for item, _, _, _ in batch],
                                        settings=settings, return_records=True)
    except ValueError:
        for item, _, key, digest in batch:
            explain_image(bbam, item, img_dir, out, settings, key, digest)
        return
    seconds = (time.perf_counter() - start) / len(batch)
    for (item, _, key, digest), (maps, records) in zip(batch, results):
        _write_maps(out, item, maps, records, seconds, key, digest)


def _read_item_image(item: ImageItem, img_dir: Path, out: Path) -> torch.Tensor | None:
    """An item's image as BBAM takes it; None, with its failure recorded, where it cannot be used."""
    try:
        image = read_image(image_path(img_dir, item))
        if tuple(image.shape[-2:]) != (item.height, item.width):
            raise InputError(f"image {item.file_name} is {image.shape[2]}x{image.shape[1]} (EXIF orientation "
                             f"applied), the COCO file says {item.width}x{item.height}")
    except InputError as err:
        record_failure(out, item, str(err))
        return None
    return image


def _write_maps(out: Path, item: ImageItem, maps: torch.Tensor | None, records: list, seconds: float, key: str,
                image_digest: str) -> None:
    """One image's maps file from BBAM's maps (K, 1, H, W) and records (None and []: no boxes)."""
    maps_np = np.zeros((0, item.height, item.width), np.float16) if maps is None else maps[:, 0].cpu().numpy()
    save_maps(out, item, maps_np, json.dumps([asdict(r) for r in records]), seconds, key, image_digest)
    RunLayout(out).failure_file(item.image_id).unlink(missing_ok=True)


def image_digest(item: ImageItem, img_dir: Path) -> str | None:
    """The sha256 of an item's image file; None when it cannot be read."""
    try:
        return file_digest(image_path(img_dir, item))
    except OSError:
        return None


def expected_key(item: ImageItem, img_dir: Path, fingerprint: str) -> str | None:
    """The key the maps of ``item`` must carry now; None when its image cannot be read."""
    digest = image_digest(item, img_dir)
    return None if digest is None else maps_key(item, digest, fingerprint)


def compute_maps(bbam: BBAM, coco: CocoInput, img_dir: Path, out: Path, settings: BBAMSettings | None = None,
                 rank: int = 0, world_size: int = 1, show_progress: bool = True, detector_digest: str = "",
                 force: bool = False, batch_images: int = 1) -> int:
    """Stage 1 for this rank's share of images; returns how many images it computed.

    ``settings``: BBAM's (default: ``BBAMSettings()``). ``batch_images``: images whose boxes are
    optimised together (:func:`explain_images`; the same maps to float rounding, fewer forwards
    where their windows share sizes; for a GPU); 1: one image at a time.

    An image is skipped when its maps file carries the key of its current inputs (see
    :func:`maps_key`); ``force`` recomputes every image.
    """
    if batch_images < 1:
        raise ValueError(f"batch_images must be at least 1, got {batch_images}")
    settings = BBAMSettings() if settings is None else settings
    layout = RunLayout(out)
    layout.maps_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = run_fingerprint(settings, detector_digest, bbam.extensions)
    mine = coco.items[rank::world_size]
    digests = {item.image_id: image_digest(item, img_dir) for item in mine}
    keys = {i: None if d is None else maps_key(item, d, fingerprint) for (i, d), item in zip(digests.items(), mine)}
    todo = [item for item in mine if force or keys[item.image_id] is None
            or stored_key(layout.maps_file(item.image_id)) != keys[item.image_id]]
    if show_progress and len(todo) < len(mine):
        print(f"[rank {rank}] resuming: {len(mine) - len(todo)} of {len(mine)} images already done "
              "with these boxes, images and settings")
    bar = tqdm(total=len(todo), desc=f"BBAM maps (rank {rank})" if world_size > 1 else "BBAM maps", unit="img",
               disable=not show_progress, position=rank)
    for first in range(0, len(todo), batch_images):
        batch = todo[first:first + batch_images]
        bar.set_postfix(boxes=sum(len(item.boxes) for item in batch))
        if len(batch) == 1:
            item = batch[0]
            explain_image(bbam, item, img_dir, out, settings, keys[item.image_id] or "", digests[item.image_id] or "")
        else:
            explain_images(bbam, batch, img_dir, out, settings, [keys[i.image_id] or "" for i in batch],
                           [digests[i.image_id] or "" for i in batch])
        bar.update(len(batch))
    bar.close()
    return len(todo)
