"""Writes synthetic images and their true masks as a COCO instance dataset."""
from __future__ import annotations

from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..io.coco import encode_mask
from ..utils.atomic import write_json_atomic

from .world import CLASSES, WorldConfig, draw_image


def write_dataset(out: str | Path, num_images: int, seed: int, config: WorldConfig = WorldConfig(),
                  show_progress: bool = True) -> Path:
    """Draws ``num_images`` images of the world with ``seed`` into ``out``.

    Writes ``out/images/{index:06d}.png`` and ``out/annotations.json`` (COCO: images,
    categories with ids 1..7, and per object bbox, area, iscrowd = 0 and the true mask as
    RLE). Returns the path of the annotation file.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in tqdm(range(num_images), desc="drawing images", unit="img", disable=not show_progress):
        image, objects = draw_image(seed, index, config)
        file_name = f"{index:06d}.png"
        Image.fromarray(image).save(out / "images" / file_name)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]})
        for obj in objects:
            x1, y1, x2, y2 = obj.bbox_xyxy
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": obj.label + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": int(obj.mask.sum()),
                "iscrowd": 0,
                "segmentation": encode_mask(obj.mask),
            })
    payload = {
        "info": {"description": f"bbam-captum synthetic {config.name} world", "world": config.name,
                 "seed": seed, "image_size": config.image_size},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)],
    }
    ann_path = out / "annotations.json"
    write_json_atomic(ann_path, payload)
    return ann_path
