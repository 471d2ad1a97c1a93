"""Speed benchmark: our BBAM against the original recipe and Grad-CAM, in one process.

    .venv/bin/python -m benchmarks.speed [--quick] --out DIR
    .venv/bin/python -m benchmarks.speed --scale real --out DIR  (see benchmarks.speed_real)

- ``reference``: the original implementation's recipe: 300 Adam steps at lr 0.02, one
  object at a time, detector weights requiring gradients (they are computed every step),
  up to 100 positive proposals, the RPN running on every step, no early stop. (The
  original also re-read and re-transformed the image from disk on every step; that is
  left out, so this reference is if anything faster than the original.)
  The whole image is seen, as in the original.
- ``bbam``: our defaults (all boxes of an image in one batch, frozen weights, no RPN,
  fewer positives, a context window around each box, fewer steps at a larger rate).
- ``gradcam``: Grad-CAM for the same boxes.
- ablations (full run only): our default with one of its choices undone, to show what
  each choice buys in time and in mask quality.

Mask quality is the mean IoU of the pipeline's instance masks (default label settings:
blur, threshold) with the true masks. Where our time goes is measured with
torch.profiler; scaling is measured with boxes per image and with the image side.

Writes ``DIR/speed.json`` (rows with ``method``, ``sec_per_object``, ``peak_mem_mb``,
``mask_miou`` and ``device``), ``DIR/speed.md`` with the ratios and where our time goes,
and ``DIR/speed_scaling.png`` (time against boxes per image and image size).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bbam_captum import BBAM, BBAMSettings, load_detector  # noqa: E402
from bbam_captum.detectors import MMDetTwoStageAdapter  # noqa: E402
from bbam_captum.io import load_coco_image  # noqa: E402
from bbam_captum.labels import LabelSettings, pseudo_masks  # noqa: E402
from bbam_captum.metrics import mask_iou  # noqa: E402
from bbam_captum.utils.atomic import write_json_atomic  # noqa: E402

from .harness import (DEFAULT_ANN, changed_settings, ensure_val_split, markdown_table, peak_memory,  # noqa: E402
                      start_run, write_markdown)
from .methods import GradCAMMethod  # noqa: E402
from .recipes import REFERENCE, MMDetReferenceAdapter  # noqa: E402


def _instance_ious(maps: torch.Tensor, boxes: torch.Tensor, true: torch.Tensor) -> list[float]:
    """IoU of the pipeline's instance masks (default thresholds, no refinement: it would add the
    same step to every row) with the true masks."""
    settings = LabelSettings(refine=False, crf=False)
    instance, _, _ = pseudo_masks(maps[:, 0].float().cpu().numpy(), boxes.numpy(), settings, None)
    return mask_iou(torch.from_numpy(instance), true).tolist()


def run_method(name: str, adapter: MMDetTwoStageAdapter, images: list, settings: BBAMSettings | None,
               one_at_a_time: bool) -> dict:
    """Seconds per object, peak memory and mask mIoU of BBAM with ``settings`` (None: Grad-CAM)."""
    ious, seconds, peak, objects, steps = [], 0.0, 0.0, 0, []
    for image, boxes, labels, true in tqdm(images, desc=name, unit="img"):
        start = time.perf_counter()
        with peak_memory(adapter.device) as mem:
            if settings is None:
                maps = GradCAMMethod()(adapter, image, boxes, labels)
            elif one_at_a_time:
                runs = [BBAM(adapter).attribute(image, b, target=int(c), settings=settings, return_records=True)
                        for b, c in zip(boxes, labels)]
                maps, records = torch.cat([m for m, _ in runs]), [r for _, rs in runs for r in rs]
            else:
                maps, records = BBAM(adapter).attribute(image, boxes, target=labels, settings=settings,
                                                        return_records=True)
        seconds += time.perf_counter() - start
        peak = max(peak, mem.mb)
        objects += len(boxes)
        steps += [r.steps for r in records] if settings is not None else []
        ious += _instance_ious(maps, boxes, true)
    return {"method": name, "sec_per_object": seconds / objects, "peak_mem_mb": peak,
            "mask_miou": float(np.mean(ious)), "objects": objects,
            "mean_steps": float(np.mean(steps)) if steps else None,
            "settings": None if settings is None else changed_settings(settings)}


def where_time_goes(adapter: MMDetTwoStageAdapter, image, boxes, labels) -> dict:
    """Shares of our default's CPU time by kind of operation, from torch.profiler (forward and
    backward together): convolutions (backbone + FPN), RoIAlign, fully connected layers
    (RoI head), batch norm, and the rest (mask upsampling, perturbation, loss, Adam, Python)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        BBAM(adapter).attribute(image, boxes, target=labels)
    kinds = {"convolution (backbone, FPN)": ("conv",), "RoIAlign (RoI head)": ("roialign",),
             "fully connected (RoI head)": ("addmm", "aten::mm"), "batch norm": ("batch_norm",)}
    shares = dict.fromkeys([*kinds, "rest (masks, loss, Adam, Python)"], 0.0)
    total = 0.0
    for event in prof.key_averages():
        if event.key.startswith(("autograd::engine", "aten::to", "aten::copy")) and event.self_cpu_time_total == 0:
            continue
        total += event.self_cpu_time_total
        name = event.key.lower()
        kind = next((k for k, words in kinds.items() if any(w in name for w in words)),
                    "rest (masks, loss, Adam, Python)")
        shares[kind] += event.self_cpu_time_total
    return {k: v / total for k, v in shares.items()}


class NativeSizeAdapter(MMDetTwoStageAdapter):
    """Runs the detector at the image's own size (no test-pipeline resize), to see how the
    cost grows with the image side."""

    def input_scale(self, height: int, width: int) -> tuple[float, float]:
        return 1.0, 1.0


def scaling(model, image, boxes, labels, steps: int | None) -> dict:
    """Seconds per object for 1..K boxes of one image, and for one box on the image resized
    to several sides (detector at that resolution); our defaults, or ``steps`` steps."""
    settings = BBAMSettings() if steps is None else BBAMSettings(steps=steps)
    adapter, native = MMDetTwoStageAdapter(model), NativeSizeAdapter(model)
    by_boxes, by_size = {}, {}
    for k in sorted({1, 2, min(4, len(boxes)), len(boxes)}):
        start = time.perf_counter()
        BBAM(adapter).attribute(image, boxes[:k], target=labels[:k], settings=settings)
        by_boxes[k] = (time.perf_counter() - start) / k
    for size in (128, 192, 256, 384):
        scale = size / image.shape[-1]
        resized = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", align_corners=False)[0]
        start = time.perf_counter()
        BBAM(native).attribute(resized, boxes[:1] * scale, target=labels[:1], settings=settings)
        by_size[size] = time.perf_counter() - start
    return {"sec_per_object_by_boxes": by_boxes, "sec_per_object_by_image_size": by_size}


def main(argv: list[str] | None = None) -> None:
    scale, rest = _scale_parser().parse_known_args(argv)
    if scale.scale == "real":
        from .speed_real import main as main_real

        main_real(rest)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[_scale_parser()])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="2 images, no ablations, short scaling runs")
    parser.add_argument("--num-images", type=int, default=None, help="default: 2 quick, 12 full")
    parser.add_argument("--skip", type=int, default=24,
                        help="leave out the first images of the split (default: 24, the val images BBAM's defaults "
                             "and label thresholds were chosen on or are tested on)")
    parser.add_argument("--ann", default=str(DEFAULT_ANN))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ann_path = ensure_val_split(Path(args.ann))
    ann = json.loads(ann_path.read_text())
    num = args.num_images or (2 if args.quick else 12)
    infos = [i for i in ann["images"] if any(a["image_id"] == i["id"] for a in ann["annotations"])]
    infos = infos[args.skip:args.skip + num]
    images = [load_coco_image(ann, i, ann_path.parent / "images") for i in infos]
    model = load_detector(device=args.device)
    run = start_run("benchmarks.speed", argv, args.device)
    device = run.device
    plain, reference = MMDetTwoStageAdapter(model), MMDetReferenceAdapter(model)
    BBAM(plain).attribute(*images[0][:2], target=images[0][2], steps=2)  # warm-up: one-off allocations

    rows = [run_method("reference", reference, images, REFERENCE, one_at_a_time=True),
            run_method("bbam", plain, images, BBAMSettings(), one_at_a_time=False),
            run_method("gradcam", plain, images, None, one_at_a_time=False)]
    if not args.quick:  # our default with one choice undone at a time: what each choice buys
        rows += [run_method(name, adapter, images, settings, one_at_a_time=single)
                 for name, adapter, settings, single in ABLATIONS(plain, reference)]
    for row in rows:
        row["device"] = device
    ref, ours, cam = rows[0], rows[1], rows[2]
    image, boxes, labels, _ = max(images, key=lambda x: len(x[1]))
    profile = where_time_goes(plain, image, boxes, labels)
    scale = scaling(model, image, boxes, labels, steps=10 if args.quick else None)
    summary = {"rows": rows, "reference_over_ours": ref["sec_per_object"] / ours["sec_per_object"],
               "ours_over_gradcam": ours["sec_per_object"] / cam["sec_per_object"],
               "miou_ours_minus_reference": ours["mask_miou"] - ref["mask_miou"],
               "profile_share_of_our_time": profile, "scaling": scale, **run.meta(),
               "images": len(images), "objects": ours["objects"], "seconds": round(run.seconds(), 1)}
    write_json_atomic(out / "speed.json", rows, indent=1)
    write_json_atomic(out / "speed_summary.json", summary, indent=1)
    plot_scaling(scale, device, out / "speed_scaling.png")
    print(write_report(summary, out / "speed.md"))


def _scale_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--scale", choices=("synth", "real"), default="synth",
                        help="synth: the bundled detector on the synthetic val split (default); real: a stock "
                             "ResNet-50-FPN Faster R-CNN on 800 x 1333 inputs (benchmarks.speed_real, its own "
                             "options)")
    return parser


def ABLATIONS(plain: MMDetTwoStageAdapter,  # noqa: N802
              reference: MMDetReferenceAdapter) -> list[tuple[str, MMDetTwoStageAdapter, BBAMSettings, bool]]:
    """(name, adapter, settings, one box at a time): our default with one choice undone."""
    return [
        ("bbam_whole_image", plain, BBAMSettings(context=None), False),
        ("bbam_100_positives", plain, BBAMSettings(max_positives=100), False),
        ("bbam_300_steps_lr_0.02", plain, BBAMSettings(steps=300, lr=0.02), False),
        ("bbam_weight_grads_and_rpn", reference, BBAMSettings(), False),
        ("bbam_one_box_at_a_time", plain, BBAMSettings(), True),
    ]


def write_report(summary: dict, path: Path) -> str:
    """``speed.md``; returns its text."""
    rows = summary["rows"]
    lines = [f"Speed benchmark, {summary['device']}, {summary['date']}: {summary['images']} synthetic val images, "
             f"{summary['objects']} objects, {summary['seconds'] / 60:.0f} min in all.", "",
             f"Command: `{summary['command']}`.", ""]
    lines += markdown_table(
        ["method", "sec/object", "peak mem (MB)", "mask mIoU", "mean steps"],
        [[r["method"], f"{r['sec_per_object']:.2f}", f"{r['peak_mem_mb']:.0f}", f"{r['mask_miou']:.3f}",
          "-" if r["mean_steps"] is None else f"{r['mean_steps']:.0f}"] for r in rows])
    lines += ["", f"- reference / ours: **{summary['reference_over_ours']:.1f}x** faster per object; "
              f"mask mIoU ours - reference: {summary['miou_ours_minus_reference']:+.3f}",
              f"- ours / Grad-CAM: {summary['ours_over_gradcam']:.1f}x the time per object",
              "- where our time goes (CPU time, forward + backward): "
              + ", ".join(f"{k} {v:.0%}" for k, v in summary["profile_share_of_our_time"].items()),
              "- scaling (seconds per object): by boxes per image "
              + ", ".join(f"{k}: {v:.2f}" for k, v in summary["scaling"]["sec_per_object_by_boxes"].items())
              + "; one box by image side " + ", ".join(f"{k} px: {v:.2f}" for k, v in
                                                     summary["scaling"]["sec_per_object_by_image_size"].items())]
    return write_markdown(path, lines)


def plot_scaling(scale: dict, device: str, path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 2.8))
    by_boxes, by_size = scale["sec_per_object_by_boxes"], scale["sec_per_object_by_image_size"]
    a.plot(list(by_boxes), list(by_boxes.values()), "o-")
    a.set_xlabel("boxes per image")
    a.set_ylabel("seconds per object")
    a.set_ylim(bottom=0)
    b.plot(list(by_size), list(by_size.values()), "o-")
    b.set_xlabel("image side (px), one box")
    b.set_ylabel("seconds")
    b.set_ylim(bottom=0)
    fig.suptitle(f"BBAM defaults, {device}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
