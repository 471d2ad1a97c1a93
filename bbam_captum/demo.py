"""The main job on the embedded default (``make demo``).

Draws a few images of the synthetic world (a seed the bundled detector never saw), runs
``bbam-captum generate`` on their boxes with the bundled detector, scores the pseudo
labels against the true masks with ``bbam-captum evaluate`` (beside the box-filled
baseline), writes ``OUT/demo.png`` (each image's maps with its pseudo masks outlined) and the
review page ``OUT/labels/report/index.html`` (``bbam-captum report``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .cli.main import main as cli
from .io import RunLayout, decode_mask, read_image
from .metrics.pseudo_labels import box_fill_miou
from .visualization import explanation_figure

DEMO_SEED = 2024


def demo_figure(out: Path, data: Path, path: Path) -> None:
    """Stacks one explanation row per image: maps blended over the image, pseudo masks outlined."""
    layout = RunLayout(out)
    ann = json.loads((data / "annotations.json").read_text())
    pseudo = json.loads(layout.coco_instances.read_text())
    names = {c["id"]: c["name"] for c in ann["categories"]}
    rows = []
    for info in ann["images"]:
        maps_file = layout.maps_file(info["id"])
        if not maps_file.exists():
            continue
        saved = np.load(maps_file)
        if not len(saved["boxes"]):
            continue
        by_id = {a["id"]: a for a in pseudo["annotations"] if a["image_id"] == info["id"]}
        height, width = saved["maps"].shape[-2:]
        masks = torch.from_numpy(np.stack([decode_mask(by_id[int(i)]["segmentation"], height, width)
                                           for i in saved["ann_ids"]]))
        image = read_image(data / "images" / info["file_name"])
        labels = [names[by_id[int(i)]["category_id"]] for i in saved["ann_ids"]]
        fig = explanation_figure(image, torch.from_numpy(saved["boxes"]), labels,
                                 torch.from_numpy(saved["maps"].astype(np.float32))[:, None], masks.bool(),
                                 title=f"image {info['id']}: BBAM maps, pseudo masks outlined in white")
        fig.canvas.draw()
        rows.append(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    Image.fromarray(np.concatenate(padded)).save(path)


def _run_step(argv: list[str]) -> None:
    """Runs ``bbam-captum ARGV``; a step that fails ends the demo with its exit code, since
    every later step reads what it writes."""
    code = cli(argv)
    if code:
        print(f"demo: 'bbam-captum {argv[0]}' failed (exit code {code}); stopping", file=sys.stderr)
        raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="BBAM pseudo labels on a few bundled synthetic images.")
    parser.add_argument("--out", default="outputs/demo")
    parser.add_argument("--num-images", type=int, default=4)
    args, extra = parser.parse_known_args(argv)
    out = Path(args.out)
    data = out / "data"
    labels = RunLayout(out / "labels")
    if not (data / "annotations.json").exists():
        _run_step(["synth", str(data), "--num-images", str(args.num_images), "--seed", str(DEMO_SEED)])
    _run_step(["generate", "--ann", str(data / "annotations.json"), "--img-dir", str(data / "images"),
              "--out", str(labels.root), *extra])
    _run_step(["evaluate", "--pred", str(labels.root), "--gt", str(data / "annotations.json")])
    scores = json.loads(labels.eval_file.read_text())
    box = box_fill_miou(data / "annotations.json")
    demo_figure(labels.root, data, out / "demo.png")
    _run_step(["report", str(labels.root), "--gt", str(data / "annotations.json")])
    print(f"\ninstance mIoU with the true masks: BBAM {scores['instance_miou']:.3f}, box filled {box:.3f}")
    print(f"figure: {out / 'demo.png'}   labels: {labels.root}   review page: {labels.report_index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
