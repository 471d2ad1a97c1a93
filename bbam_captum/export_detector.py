"""Turns a training work dir into the bundled detector: slim checkpoint, config, log, metrics.

``python -m bbam_captum.export_detector --work-dir work_dirs/detector --out bbam_captum/assets/detector``

The checkpoint keeps only ``meta`` and ``state_dict`` (no optimizer, no message hub), so
it loads with torch's plain weights-only loading and is less than half the size.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .metrics.pseudo_labels import box_fill_miou
from .utils.checkpoint_safety import mmengine_checkpoint_globals


def slim_checkpoint(src: str | Path, dst: str | Path) -> dict:
    """Writes ``meta`` + ``state_dict`` of the mmengine checkpoint ``src`` to ``dst``; returns meta."""
    with mmengine_checkpoint_globals():  # the runner's checkpoint holds its message hub
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    meta = {k: v for k, v in ckpt.get("meta", {}).items() if isinstance(v, (str, int, float, dict, list, tuple))}
    torch.save({"meta": meta, "state_dict": ckpt["state_dict"]}, dst)
    return meta


def _write_inference_config(src: Path, dst: Path) -> None:
    """Copies the run's dumped config without ``custom_imports``: the slim checkpoint loads
    without :mod:`bbam_captum.mmlab`, so loading the bundled detector changes nothing global."""
    from mmengine.config import Config

    cfg = Config.fromfile(src, import_custom_modules=False)
    cfg.pop("custom_imports", None)
    cfg.dump(dst)


def _val_history(work_dir: Path) -> list[dict]:
    """Every validation record of every run in ``work_dir`` (a resumed run spans several folders)."""
    rows = []
    for scalars in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            if any(key.startswith("coco/") for key in record):
                rows.append(record)
    return rows


def export(work_dir: str | Path, out: str | Path, val_ann: str | Path | None = None) -> Path:
    work_dir, out = Path(work_dir), Path(out)
    last = (work_dir / "last_checkpoint").read_text().strip()
    checkpoint = Path(last) if Path(last).is_file() else work_dir / Path(last).name
    out.mkdir(parents=True, exist_ok=True)
    meta = slim_checkpoint(checkpoint, out / "checkpoint.pth")
    config = sorted(work_dir.glob("*.py"))
    if not config:
        raise FileNotFoundError(f"no dumped config (*.py) in {work_dir}")
    _write_inference_config(config[0], out / "config.py")
    history = _val_history(work_dir)
    metrics = {"checkpoint": checkpoint.name, "iter": meta.get("iter"), "val_history": history,
               "final": history[-1] if history else None}
    if val_ann is not None:
        metrics["val_box_fill_instance_miou"] = box_fill_miou(val_ann)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logs = sorted(work_dir.glob("*/*.log"))
    with open(out / "train.log", "w") as f:
        for log in logs:  # the training machine's absolute paths say nothing to a reader of the log
            f.write(log.read_text().replace(f"{work_dir.resolve().parent.parent}/", ""))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--val-ann", default=None, help="val COCO file, to report the box-fill baseline")
    args = parser.parse_args()
    out = export(args.work_dir, args.out, args.val_ann)
    print(f"bundled detector written to {out}")


if __name__ == "__main__":
    main()
