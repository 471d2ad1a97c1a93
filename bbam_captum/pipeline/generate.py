"""``generate``: BBAM maps for every box of a COCO file, resumable and distributable.

Stage 1 (every rank): each image's maps go to ``OUT/maps/{image_id}.npz`` (float16,
compressed, with boxes, classes, annotation ids and per-box records), written to a
temporary name and renamed, so a killed run leaves no half file. An image whose file
exists is not computed again. With ``--launcher pytorch`` rank r takes images r, r + W, ...

Stage 2 (rank 0, after all ranks): labels are written from the maps alone
(:mod:`bbam_captum.pipeline.writers`), so other thresholds need no new BBAM run.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..attr import BBAM
from ..utils.atomic import atomic_open, write_json_atomic
from .coco_input import CocoInput, ImageItem


def map_path(out: Path, image_id: int) -> Path:
    return out / "maps" / f"{image_id}.npz"


def failure_path(out: Path, image_id: int) -> Path:
    return out / "maps" / f"{image_id}.failed.json"


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_open(path) as f:  # a file object: numpy adds no ".npz" to the temporary name
        np.savez_compressed(f, **arrays)


def save_maps(out: Path, item: ImageItem, maps: np.ndarray, records_json: str, seconds: float) -> None:
    """Writes one image's maps file: maps (np.ndarray[K, H, W], stored float16) with the item's
    boxes, classes and annotation ids, per-box records (JSON) and the seconds they took."""
    save_npz_atomic(map_path(out, item.image_id), maps=maps.astype(np.float16), boxes=item.boxes,
                    classes=item.classes, ann_ids=item.ann_ids, records=np.array(records_json),
                    seconds=np.array(seconds))


def read_image(path: Path) -> torch.Tensor:
    """An RGB image file as Tensor[3, H, W] uint8; clear errors for missing or unreadable files."""
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            array = np.array(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return torch.from_numpy(array).permute(2, 0, 1)


def explain_image(bbam: BBAM, item: ImageItem, img_dir: Path, out: Path, settings: dict) -> None:
    """Runs BBAM on one image's boxes and writes its maps file (or its failure file)."""
    start = time.perf_counter()
    try:
        image = read_image(img_dir / item.file_name)
        if tuple(image.shape[-2:]) != (item.height, item.width):
            raise ValueError(f"image {item.file_name} is {image.shape[2]}x{image.shape[1]}, "
                             f"the COCO file says {item.width}x{item.height}")
    except (FileNotFoundError, ValueError) as err:
        write_json_atomic(failure_path(out, item.image_id), {"image_id": item.image_id, "reason": str(err)})
        return
    height, width = item.height, item.width
    if len(item.boxes):
        maps, records = bbam.attribute(image, torch.from_numpy(item.boxes), target=torch.from_numpy(item.classes),
                                       return_records=True, **settings)
        maps_np = maps[:, 0].cpu().numpy()
        record_json = json.dumps([asdict(r) for r in records])
    else:
        maps_np, record_json = np.zeros((0, height, width), np.float16), "[]"
    save_maps(out, item, maps_np, record_json, time.perf_counter() - start)
    failure_path(out, item.image_id).unlink(missing_ok=True)


def compute_maps(bbam: BBAM, coco: CocoInput, img_dir: Path, out: Path, settings: dict, rank: int = 0,
                 world_size: int = 1, show_progress: bool = True) -> int:
    """Stage 1 for this rank's share of images; returns how many images it computed."""
    (out / "maps").mkdir(parents=True, exist_ok=True)
    mine = coco.items[rank::world_size]
    todo = [item for item in mine if not map_path(out, item.image_id).exists()]
    if show_progress and len(todo) < len(mine):
        print(f"[rank {rank}] resuming: {len(mine) - len(todo)} of {len(mine)} images already done")
    bar = tqdm(todo, desc=f"BBAM maps (rank {rank})" if world_size > 1 else "BBAM maps", unit="img",
               disable=not show_progress, position=rank)
    for item in bar:
        bar.set_postfix(boxes=len(item.boxes))
        explain_image(bbam, item, img_dir, out, settings)
    return len(todo)
