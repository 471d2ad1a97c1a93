"""File helpers shared by the tests that check what commands read and write."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links not followed) with its content hash."""
    return {str(p.relative_to(root)): ("link" if p.is_symlink() else sha256(p))
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def two_image_dataset(tiny_synth: Path, data: Path) -> dict:
    """Copies the first two images of the tiny set and their boxes to ``data/images`` and ``data/ann.json``."""
    (data / "images").mkdir(parents=True)
    ann = json.loads((tiny_synth / "annotations.json").read_text())
    ann["images"] = ann["images"][:2]
    ids = {i["id"] for i in ann["images"]}
    ann["annotations"] = [a for a in ann["annotations"] if a["image_id"] in ids]
    for img in ann["images"]:
        shutil.copy(tiny_synth / "images" / img["file_name"], data / "images" / img["file_name"])
    (data / "ann.json").write_text(json.dumps(ann))
    return ann
