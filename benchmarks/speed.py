"""Speed benchmark: our BBAM against the original recipe and Grad-CAM, in one process.

    .venv/bin/python -m benchmarks.speed [--quick] --out DIR

- ``reference``: the original implementation's recipe: 300 Adam steps at lr 0.02, one
  object at a time, detector weights requiring gradients (they are computed every step),
  up to 100 positive proposals, the RPN running on every step, no early stop. (The
  original also re-read and re-transformed the image from disk on every step; that is
  left out, so this reference is if anything faster than the original.)
- ``bbam``: our defaults (all boxes of an image in one batch, frozen weights, no RPN).
- ``gradcam``: Grad-CAM for the same boxes.

Writes ``DIR/speed.json`` (rows with ``method``, ``sec_per_object``, ``peak_mem_mb``,
``mask_miou`` and ``device``), ``DIR/speed.md`` with the ratios and where our time goes,
and ``DIR/speed_scaling.png`` (time against boxes per image and image size).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bbam_captum import BBAM, load_detector  # noqa: E402
from bbam_captum.detectors import MMDetTwoStageAdapter  # noqa: E402
from bbam_captum.labels import instance_masks  # noqa: E402
from bbam_captum.metrics import mask_iou  # noqa: E402
from bbam_captum.pipeline.coco_input import load_coco_image  # noqa: E402
from bbam_captum.pipeline.writers import LabelSettings  # noqa: E402

from .attribution import DEFAULT_ANN, peak_memory_mb  # noqa: E402
from .methods import GradCAMMethod  # noqa: E402

REFERENCE = dict(steps=300, lr=0.02, max_positives=100, early_stop_patience=None)


class ReferenceAdapter(MMDetTwoStageAdapter):
    """The original's wasteful habits on top of the same detector: weights keep requiring
    gradients (and get them), and the RPN runs on every forward."""

    @contextmanager
    def frozen(self):
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.zero_grad(set_to_none=True)
            self.model.train(was_training)

    def features(self, images):
        features = super().features(images)
        self.model.rpn_head(features.maps)  # computed and discarded, as the original did
        return features


class TimedAdapter(MMDetTwoStageAdapter):
    """Adds up the wall time of the backbone (+ neck) and of the RoI head; the rest of a
    BBAM run is loss, backward and optimiser."""

    def __init__(self, model):
        super().__init__(model)
        self.seconds: dict[str, float] = defaultdict(float)

    def features(self, images):
        start = time.perf_counter()
        out = super().features(images)
        self.seconds["backbone_forward"] += time.perf_counter() - start
        return out

    def roi_outputs(self, features, rois):
        start = time.perf_counter()
        out = super().roi_outputs(features, rois)
        self.seconds["roi_head_forward"] += time.perf_counter() - start
        return out


def run_method(name: str, adapter, images: list, threshold: float) -> dict:
    ious, seconds, peak, objects = [], 0.0, 0.0, 0
    for image, boxes, labels, true in images:
        start = time.perf_counter()
        with peak_memory_mb(adapter.device) as mem:
            if name == "reference":  # one object at a time
                maps = torch.cat([BBAM(adapter).attribute(image, b, target=int(c), **REFERENCE)
                                  for b, c in zip(boxes, labels)])
            elif name == "bbam":
                maps = BBAM(adapter).attribute(image, boxes, target=labels)
            else:
                maps = GradCAMMethod()(adapter, image, boxes, labels)
        seconds += time.perf_counter() - start
        peak = max(peak, mem[0])
        objects += len(boxes)
        ious += mask_iou(instance_masks(maps, boxes, threshold), true).tolist()
    return {"method": name, "sec_per_object": seconds / objects, "peak_mem_mb": peak,
            "mask_miou": float(np.mean(ious)), "objects": objects}


def scaling(adapter, image, boxes, labels, steps: int) -> dict:
    """Seconds per object for 1..K boxes of one image, and per image size (one box)."""
    by_boxes, by_size = {}, {}
    for k in sorted({1, 2, min(4, len(boxes)), len(boxes)}):
        start = time.perf_counter()
        BBAM(adapter).attribute(image, boxes[:k], target=labels[:k], steps=steps)
        by_boxes[k] = (time.perf_counter() - start) / k
    for size in (128, 192, 256, 320):
        scale = size / image.shape[-1]
        resized = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", align_corners=False)[0]
        start = time.perf_counter()
        BBAM(adapter).attribute(resized, boxes[:1] * scale, target=labels[:1], steps=steps)
        by_size[size] = time.perf_counter() - start
    return {"sec_per_object_by_boxes": by_boxes, "sec_per_object_by_image_size": by_size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--num-images", type=int, default=None, help="default: 2 quick, 8 full")
    parser.add_argument("--ann", default=str(DEFAULT_ANN))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ann = json.loads(Path(args.ann).read_text())
    num = args.num_images or (2 if args.quick else 8)
    infos = [i for i in ann["images"] if any(a["image_id"] == i["id"] for a in ann["annotations"])][:num]
    images = [load_coco_image(ann, i, Path(args.ann).parent / "images") for i in infos]
    model = load_detector(device=args.device)
    threshold = LabelSettings().instance_threshold
    device = f"{platform.machine()} CPU, {torch.get_num_threads()} threads" if args.device == "cpu" \
        else torch.cuda.get_device_name(torch.device(args.device))

    timed = TimedAdapter(model)
    rows = [run_method("reference", ReferenceAdapter(model), images, threshold),
            run_method("bbam", timed, images, threshold),
            run_method("gradcam", MMDetTwoStageAdapter(model), images, threshold)]
    for row in rows:
        row["device"] = device
    ours, ref, cam = rows[1], rows[0], rows[2]
    bbam_total = ours["sec_per_object"] * ours["objects"]
    profile = {k: v / bbam_total for k, v in timed.seconds.items()}
    profile["loss_backward_optimiser_and_overhead"] = 1 - sum(profile.values())
    image, boxes, labels, _ = max(images, key=lambda x: len(x[1]))
    scale = scaling(MMDetTwoStageAdapter(model), image, boxes, labels, steps=30 if args.quick else 100)
    summary = {"rows": rows, "reference_over_ours": ref["sec_per_object"] / ours["sec_per_object"],
               "ours_over_gradcam": ours["sec_per_object"] / cam["sec_per_object"],
               "miou_ours_minus_reference": ours["mask_miou"] - ref["mask_miou"],
               "profile_share_of_our_time": profile, "scaling": scale, "device": device,
               "date": time.strftime("%Y-%m-%d"), "images": len(images)}
    (out / "speed.json").write_text(json.dumps(rows, indent=1))
    (out / "speed_summary.json").write_text(json.dumps(summary, indent=1))
    lines = [f"Speed benchmark, {device}, {summary['date']}, {len(images)} images, {ours['objects']} objects.", "",
             "| method | sec/object | peak mem (MB) | mask mIoU |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['sec_per_object']:.2f} | {r['peak_mem_mb']:.0f} | {r['mask_miou']:.3f} |"
              for r in rows]
    lines += ["", f"reference / ours: {summary['reference_over_ours']:.1f}x; ours / Grad-CAM: "
              f"{summary['ours_over_gradcam']:.1f}x; mIoU ours - reference: {summary['miou_ours_minus_reference']:+.3f}",
              "", "Where our time goes: " + ", ".join(f"{k} {v:.0%}" for k, v in profile.items())]
    (out / "speed.md").write_text("\n".join(lines) + "\n")
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 2.8))
    a.plot(list(scale["sec_per_object_by_boxes"]), list(scale["sec_per_object_by_boxes"].values()), "o-")
    a.set_xlabel("boxes per image")
    a.set_ylabel("seconds per object")
    b.plot(list(scale["sec_per_object_by_image_size"]), list(scale["sec_per_object_by_image_size"].values()), "o-")
    b.set_xlabel("image side (px), one box")
    b.set_ylabel("seconds")
    fig.suptitle(f"BBAM cost ({'30' if args.quick else '100'} steps), {device}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "speed_scaling.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
