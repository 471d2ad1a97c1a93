"""Speed benchmark at real scale: a stock ResNet-50-FPN Faster R-CNN on 800 x 1333 inputs.

    .venv/bin/python -m benchmarks.speed_real --out DIR [--device cuda] [--detector NAME]
    (or: .venv/bin/python -m benchmarks.speed --scale real --out DIR ...)

The methods are those of :mod:`benchmarks.speed`: ``reference`` (the original recipe: 300
Adam steps at lr 0.02, one box at a time on the whole image, up to 100 positives, weight
gradients and the RPN on every step), ``bbam`` (our defaults) and ``gradcam``.

Cases, all on one image of ``--image-size`` (default 800 x 1333, the stock test scale, so
the test pipeline does not resize it), boxes drawn with COCO's mix of sizes (41 % small,
34 % medium, 25 % large by area, with COCO's thresholds of 32^2 and 96^2 pixels measured on
an image of 480 px, scaled to this image's shorter side):

- ``small``, ``medium``, ``large``: one box of that size (how cost grows with box size);
  every method.
- ``mixed_N``: N boxes of the mix (how cost grows with boxes per image); ``bbam`` only: the
  other two explain one box at a time on the whole image, so their cost per object does
  not depend on N. With ``--window-padding SHARE`` also ``bbam_padded``: our defaults with
  windows of several sizes sharing a forward (``BBAMSettings.window_padding``), in the same
  run, so that the two can be compared on one machine.

Random weights: a detector without trained weights has no positive proposals, and every
box would fall back to itself as its only positive. To give both recipes the work a trained
detector gives them, this benchmark (never the library) makes every box's positives the
same: ``--positives`` (default 60, the median count the trained bundled detector admits
among its 200 jittered proposals on synthetic val images) of the box's jittered proposals,
drawn at random over the whole jitter range, their regressed boxes the box itself, their
targets the detector's own outputs on the unperturbed image. Each recipe then keeps up to
its own ``max_positives`` of them (100 for the reference, 20 for ours).

Timing: on CPU a step at this scale takes seconds, so each run is timed for
``--timed-steps`` steps and extrapolated to the recipe's step count: the time outside the
optimisation loop (positive selection, the memory probe) plus the measured seconds per
step times the recipe's steps. ``--complete`` names cases where our defaults run all their
steps (measured, not extrapolated). Rows say which. Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` over the call; on CPU the kernel's record of the
process's peak resident size over the call (reset at its start), minus the resident size
at its start: what the call added, weights and input excluded.

Writes ``DIR/speed_real.json`` (rows like ``speed.json``'s; ``--name`` changes the stem), ``DIR/speed_real_meta.json``
(every case) and ``DIR/speed_real.md``. Cases are cached under
``DIR/work/speed_real/<detector>_<device>_<size>_<positives>pos/``, so a stopped run resumes (``--fresh`` starts
over).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bbam_captum import BBAM, BBAMSettings
from bbam_captum.attr import (PositiveProposals, PositiveSelector, box_generator, estimate_step_memory,
                              optimise_masks)
from bbam_captum.detectors import DetectorAdapter
from bbam_captum.detectors.base import Crop
from bbam_captum.errors import SettingsError
from bbam_captum.ops import jitter_boxes, to_rois
from bbam_captum.utils.atomic import write_json_atomic

from .harness import Timed, changed_settings, markdown_table, peak_memory, start_run, synchronizer, write_markdown
from .recipes import OURS, REFERENCE, MMDetReferenceAdapter, TorchvisionReferenceAdapter

# COCO's size thresholds (areas in pixels of its images, about 640 x 480) and the share of
# its instances in each: small < 32^2 <= medium < 96^2 <= large
COCO_SIZES = {"small": (4.0**2, 32.0**2, 0.41), "medium": (32.0**2, 96.0**2, 0.34),
              "large": (96.0**2, 400.0**2, 0.25)}
COCO_SHORT_SIDE = 480


@dataclass
class Detector:
    """What every method needs of one detector (built by a :class:`DetectorEntry`).

    Attributes:
        adapter: the detector as the library sees it (frozen weights, no RPN).
        reference: the same detector with the original's habits (weight gradients, the RPN
            on every step).
        gradcam: ``(adapter, image, boxes, labels) -> maps``, or None where not available.
    """

    adapter: object
    reference: object
    gradcam: Callable[[object, Tensor, Tensor, Tensor], Tensor] | None


@dataclass
class DetectorEntry:
    """How to build one detector (``build(device)``), and what to call it in the report."""

    description: str
    build: Callable[[str], Detector]


def _mmdet(config: str | None, description: str) -> DetectorEntry:
    """An MMDetection detector: ``config`` names one of MMDetection's own configs (random
    weights), None the bundled detector (trained weights)."""

    def build(device: str) -> Detector:
        from mmengine.utils import get_installed_path

        from bbam_captum import load_detector
        from bbam_captum.detectors import MMDetTwoStageAdapter

        from .methods import GradCAMMethod

        torch.manual_seed(0)  # the random weights
        if config is None:
            model = load_detector(device=device)
        else:
            model = load_detector(Path(get_installed_path("mmdet")) / ".mim" / "configs" / config, None, device=device)
        return Detector(MMDetTwoStageAdapter(model), MMDetReferenceAdapter(model), GradCAMMethod())

    return DetectorEntry(description, build)


def _torchvision(description: str) -> DetectorEntry:
    """torchvision's ``fasterrcnn_resnet50_fpn`` (random weights, no download; its own transform
    resizes to 800 x 1333), the detector used where MMDetection's CUDA ops are not built."""

    def build(device: str) -> Detector:
        from torchvision.models.detection import fasterrcnn_resnet50_fpn

        from bbam_captum.detectors import TorchvisionRCNNAdapter

        from .methods import GradCAMMethod

        torch.manual_seed(0)  # the random weights
        model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).to(device).eval()
        return Detector(TorchvisionRCNNAdapter(model), TorchvisionReferenceAdapter(model), GradCAMMethod())

    return DetectorEntry(description, build)


# one entry per detector
DETECTORS: dict[str, DetectorEntry] = {
    "mmdet_r50_fpn": _mmdet("faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
                            "MMDetection faster-rcnn_r50_fpn_1x_coco.py (random weights)"),
    "torchvision_r50_fpn": _torchvision("torchvision fasterrcnn_resnet50_fpn (random weights)"),
    "bundled": _mmdet(None, "the bundled slim detector"),
}


def draw_boxes(num: int, height: int, width: int, seed: int, size: str | None = None) -> Tensor:
    """``num`` boxes (Tensor[num, 4]) inside an image of this size: COCO's mix of sizes, or
    only ``size``; area log-uniform within the size's range, aspect ratio log-uniform in
    [1/2, 2], position uniform."""
    g = torch.Generator().manual_seed(seed)
    names = list(COCO_SIZES)
    scale = (min(height, width) / COCO_SHORT_SIDE) ** 2
    boxes = []
    for _ in range(num):
        pick = size or names[int(torch.multinomial(torch.tensor([COCO_SIZES[n][2] for n in names]), 1, generator=g))]
        lo, hi, _ = COCO_SIZES[pick]
        area = math.exp(math.log(lo) + float(torch.rand(1, generator=g)) * (math.log(hi) - math.log(lo))) * scale
        aspect = math.exp((float(torch.rand(1, generator=g)) * 2 - 1) * math.log(2))
        w = min(math.sqrt(area * aspect), width - 1.0)
        h = min(math.sqrt(area / aspect), height - 1.0)
        x, y = float(torch.rand(1, generator=g)) * (width - w), float(torch.rand(1, generator=g)) * (height - h)
        boxes.append([x, y, x + w, y + h])
    return torch.tensor(boxes)


def smooth_image(height: int, width: int, seed: int) -> Tensor:
    """A smooth random RGB image, Tensor[3, H, W] uint8 (its content does not change the cost)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, max(2, height // 32), max(2, width // 32)), generator=g) * 255
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0].to(torch.uint8)


def forced_positives(count: int) -> PositiveSelector:
    """A positive selection (BBAM's ``select_positives``) that makes every box's O+ ``count`` of its
    jittered proposals at random, regressed onto the box (see the module's docstring); a benchmark
    device for detectors with random weights, which have no positives of their own."""

    def select(adapter: DetectorAdapter, image: Tensor, boxes: Tensor, targets: Tensor,
               settings: BBAMSettings) -> list[PositiveProposals]:
        num_proposals, max_positives, seed = settings.num_proposals, settings.max_positives, settings.seed
        height, width = image.shape[-2:]
        generators = [box_generator(seed, box) for box in boxes.cpu()]
        props = torch.cat([jitter_boxes(box[None], num_proposals, settings.max_shift, height, width, g)
                           for box, g in zip(boxes.cpu(), generators)]).to(boxes.device)  # [K, N, 4]
        flat = props.reshape(-1, 4)
        # the detector's outputs on all proposals, as the library's selection computes them
        out = adapter.roi_outputs(adapter.features(image), to_rois([flat]))
        probs = out.probs.reshape(*props.shape[:2], -1)
        deltas = out.deltas.reshape(*props.shape[:2], *out.deltas.shape[1:])
        result = []
        for i, (box, target, g) in enumerate(zip(boxes, targets.tolist(), generators)):
            keep = torch.randperm(num_proposals, generator=g)[:min(count, max_positives)].to(boxes.device)
            result.append(PositiveProposals(rois=props[i, keep], regressed=box.expand(len(keep), 4).clone(),
                                            target=target, probs=probs[i, keep, target],
                                            deltas=deltas[i, keep, target], iou_threshold=0.9, fallback=False))
        return result

    return select


class Probe:
    """BBAM's optimisation and step-memory estimate (its ``optimise_masks`` and ``estimate_step_memory``),
    wrapped to keep the seconds of the optimisation loops, the chunks and windows they ran on, and the
    estimate."""

    def __init__(self, synchronize: Callable[[], None]) -> None:
        self.loop = Timed(optimise_masks, synchronize)
        self.chunk_sizes: list[int] = []
        self.window_pixels: list[int] = []
        self.estimate_bytes: list[float] = []

    def estimate_step_memory(self, adapter: DetectorAdapter, image: Tensor, mu: Tensor, masks: list[Tensor],
                             positives: list[PositiveProposals], crops: list[Crop] | None) -> list[float]:
        self.estimate_bytes = estimate_step_memory(adapter, image, mu, masks, positives, crops)
        return self.estimate_bytes

    def optimise_masks(self, adapter: DetectorAdapter, image: Tensor, mu: Tensor, masks: list[Tensor],
                       positives: list[PositiveProposals], crops: list[Crop] | None, settings: BBAMSettings,
                       show_progress: bool) -> tuple[list[float], list[int]]:
        result = self.loop(adapter, image, mu, masks, positives, crops, settings, show_progress)
        self.chunk_sizes.append(len(masks))
        self.window_pixels += [c.width * c.height for c in crops] if crops is not None else []
        return result


def run_case(detector: Detector, method: str, image: Tensor, boxes: Tensor, timed_steps: int | None,
             positives: int, max_memory_mb: float | None = None, window_padding: float = 0.0) -> dict:
    """One method on one image: measured seconds, seconds extrapolated to the recipe's steps,
    peak memory, and for BBAM its chunks and windows."""
    device = detector.adapter.device
    synchronize = synchronizer(device)
    labels = torch.zeros(len(boxes), dtype=torch.long)
    row: dict = {"method": method, "objects": len(boxes)}
    if method == "gradcam":
        synchronize()
        start = time.perf_counter()
        with peak_memory(device) as mem:
            detector.gradcam(detector.adapter, image, boxes, labels)
            synchronize()
        seconds = time.perf_counter() - start
        return {**row, "seconds": seconds, "seconds_measured": seconds, "extrapolated": False,
                "peak_mem_mb": mem.mb}
    recipe = REFERENCE if method == "reference" else OURS
    settings = replace(recipe, window_padding=window_padding) if method == "bbam_padded" else recipe
    if method != "reference" and max_memory_mb is not None:
        settings = replace(settings, max_memory_mb=max_memory_mb)
    if timed_steps is not None:
        settings = replace(settings, steps=min(timed_steps, recipe.steps))
    adapter = detector.reference if method == "reference" else detector.adapter
    probe = Probe(synchronize)
    bbam = BBAM(adapter, select_positives=forced_positives(positives),
                estimate_step_memory=probe.estimate_step_memory, optimise_masks=probe.optimise_masks)
    # the reference explains one box at a time, as the original did
    batches = [(b[None], c[None]) for b, c in zip(boxes, labels)] if method == "reference" else [(boxes, labels)]
    synchronize()
    start = time.perf_counter()
    records = []
    with peak_memory(device) as mem:
        for b, c in batches:
            records += bbam.attribute(image, b, target=c, settings=settings, return_records=True)[1]
        synchronize()
    measured = time.perf_counter() - start
    steps = settings.steps
    per_step = probe.loop.seconds / steps
    seconds = measured - probe.loop.seconds + per_step * recipe.steps
    image_pixels = image.shape[-2] * image.shape[-1]
    return {**row, "seconds": seconds, "seconds_measured": measured, "extrapolated": steps < recipe.steps,
            "steps_timed": steps, "recipe_steps": recipe.steps, "seconds_per_step": per_step,
            "seconds_outside_steps": measured - probe.loop.seconds, "peak_mem_mb": mem.mb,
            "mean_positives": sum(r.num_positives for r in records) / len(records),
            "chunks": probe.chunk_sizes,
            "window_share": (sum(probe.window_pixels) / len(probe.window_pixels) / image_pixels
                             if probe.window_pixels else 1.0),
            "estimated_step_mem_mb": sum(probe.estimate_bytes) / 2**20 if probe.estimate_bytes else None,
            "window_padding": settings.window_padding}


def plan(counts: list[int], complete: list[str], padded: bool = False) -> list[tuple[str, str, int, str | None]]:
    """(case name, method, number of boxes, size or None for the mix), cheapest first; with ``padded``
    each mixed case also as ``bbam_padded``."""
    cases = []
    for size in COCO_SIZES:
        cases += [(size, "bbam", 1, size), (size, "gradcam", 1, size), (size, "reference", 1, size)]
    for n in counts:
        cases += [(f"mixed_{n}", "bbam", n, None)] + ([(f"mixed_{n}", "bbam_padded", n, None)] if padded else [])
    cases += [(f"{name}_complete", "bbam", 1, name) for name in complete]
    return cases


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--detector", default="mmdet_r50_fpn", choices=sorted(DETECTORS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-size", default="800x1333", help="HxW (default: 800x1333, the stock test scale)")
    parser.add_argument("--counts", default="10,50", help="boxes per image of the mixed cases (default: 10,50)")
    parser.add_argument("--timed-steps", type=int, default=None,
                        help="steps timed per run, then extrapolated (default: 2 on CPU, all on CUDA)")
    parser.add_argument("--complete", default=None,
                        help="sizes whose one-box case our defaults also run to the end (default: small,medium on "
                             "CPU, none on CUDA where every run is complete)")
    parser.add_argument("--positives", type=int, default=60, help="forced positives per box (see above)")
    parser.add_argument("--max-memory-mb", type=float, default=None,
                        help="our defaults' step memory budget (BBAM.attribute's max_memory_mb; default: the "
                             "library's 'auto')")
    parser.add_argument("--window-padding", type=float, default=0.0, metavar="SHARE",
                        help="also run the mixed cases with windows of several sizes sharing a forward "
                             "(BBAMSettings.window_padding=SHARE) as 'bbam_padded' (default: 0, not run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="ignore the cached cases")
    parser.add_argument("--name", default="speed_real",
                        help="stem of the files written in OUT (default: speed_real; e.g. speed_real_gpu)")
    args = parser.parse_args(argv)
    try:  # BBAM's own bounds
        BBAMSettings(window_padding=args.window_padding)
    except SettingsError as err:
        parser.error(f"--{err}".replace("window_padding", "window-padding", 1))
    on_cpu = torch.device(args.device).type == "cpu"
    timed_steps = args.timed_steps if args.timed_steps is not None else (2 if on_cpu else None)
    complete = [s for s in (args.complete if args.complete is not None else ("small,medium" if on_cpu and
                                                                             timed_steps else "")).split(",") if s]
    height, width = (int(v) for v in args.image_size.lower().split("x"))
    counts = [int(n) for n in args.counts.split(",") if n]
    run = start_run("benchmarks.speed_real", argv, args.device)
    device_name = run.device
    out = Path(args.out)
    work = out / "work" / "speed_real" / (f"{args.detector}_{'cpu' if on_cpu else 'cuda'}_{height}x{width}"
                                         f"_{args.positives}pos")
    work.mkdir(parents=True, exist_ok=True)

    entry = DETECTORS[args.detector]
    image = smooth_image(height, width, args.seed)
    detector = None
    cases = {}
    for name, method, num, size in plan(counts, complete, args.window_padding > 0):
        padding = args.window_padding if method == "bbam_padded" else 0.0
        path = work / (f"{name}_{method}" + (f"_{padding:g}" if padding else "") + ".json")
        if path.exists() and not args.fresh:
            cases[(name, method)] = json.loads(path.read_text())
            continue
        if detector is None:  # built, and warmed up, only where a case is left to run
            detector = entry.build(args.device)
            warm = draw_boxes(1, height, width, args.seed + 99, "small")
            # one-off allocations, outside every timing
            BBAM(detector.adapter, select_positives=forced_positives(args.positives)).attribute(
                image, warm, target=0, steps=1)
        if method == "gradcam" and detector.gradcam is None:
            continue
        boxes = draw_boxes(num, height, width, args.seed + num + 7 * list(COCO_SIZES).index(size) if size else
                           args.seed + num, size)
        steps = None if name.endswith("_complete") else timed_steps
        row = run_case(detector, method, image, boxes, steps, args.positives, args.max_memory_mb, padding)
        row.update(case=name, size=size, boxes=boxes.tolist(), device=device_name)
        write_json_atomic(path, row, indent=1)
        cases[(name, method)] = row
        print(f"{name:>16} {method:>9}: {row['seconds'] / num:8.2f} s/object "
              f"({'extrapolated' if row['extrapolated'] else 'measured'}), {row['peak_mem_mb']:.0f} MiB", flush=True)

    meta = {"detector": args.detector, "description": entry.description, **run.meta(),
            "image_size": [height, width], "positives": args.positives, "timed_steps": timed_steps,
            "max_memory_mb": args.max_memory_mb or "auto", "seconds": round(run.seconds(), 1),
            "case_seconds": round(sum(c["seconds_measured"] for c in cases.values()), 1),
            "torch_threads": run.threads, "cases": list(cases.values())}
    rows = summary_rows(cases, device_name)
    meta["reference_over_ours"] = _ratio(rows, "reference", "bbam")
    meta["ours_over_gradcam"] = _ratio(rows, "bbam", "gradcam")
    meta["padded_over_unpadded"] = {name: cases[(name, "bbam_padded")]["seconds"] / cases[(name, "bbam")]["seconds"]
                                    for name, method in cases if method == "bbam_padded" and (name, "bbam") in cases}
    write_json_atomic(out / f"{args.name}.json", rows, indent=1)
    write_json_atomic(out / f"{args.name}_meta.json", meta, indent=1)
    print(write_report(rows, meta, out / f"{args.name}.md"))


def _mix_mean(cases: dict, method: str) -> float | None:
    """COCO's mix of sizes over the one-box cases of ``method``."""
    if not all((size, method) in cases for size in COCO_SIZES):
        return None
    weights = {size: share for size, (_, _, share) in COCO_SIZES.items()}
    return sum(w * cases[(size, method)]["seconds"] for size, w in weights.items()) / sum(weights.values())


def summary_rows(cases: dict, device: str) -> list[dict]:
    """One row per method, like ``speed.json``'s: seconds per object over COCO's mix of sizes
    (for ``bbam`` over the boxes of the mixed images), peak memory the largest of its cases."""
    rows = []
    padded = [c for (_, m), c in cases.items() if m == "bbam_padded"]
    recipes = [("reference", REFERENCE), ("bbam", OURS), ("gradcam", None)]
    if padded:
        recipes.append(("bbam_padded", replace(OURS, window_padding=padded[0]["window_padding"])))
    for method, recipe in recipes:
        mine = [c for (name, m), c in cases.items() if m == method and not name.endswith("_complete")]
        if not mine:
            continue
        mixed = [c for c in mine if c["case"].startswith("mixed_")]
        if mixed:
            sec, objects = sum(c["seconds"] for c in mixed) / sum(c["objects"] for c in mixed), sum(
                c["objects"] for c in mixed)
        else:
            sec, objects = _mix_mean(cases, method), len(mine)
        rows.append({"method": method, "sec_per_object": sec, "peak_mem_mb": max(c["peak_mem_mb"] for c in mine),
                     "mask_miou": None, "objects": objects,
                     "mean_steps": None if recipe is None else recipe.steps,
                     "settings": None if recipe is None else changed_settings(recipe),
                     "extrapolated": any(c["extrapolated"] for c in mine),
                     "sec_per_object_one_box_mix": _mix_mean(cases, method), "device": device})
    return rows


def _ratio(rows: list[dict], a: str, b: str) -> float | None:
    by = {r["method"]: r["sec_per_object"] for r in rows}
    return by[a] / by[b] if by.get(a) and by.get(b) else None


def write_report(rows: list[dict], meta: dict, path: Path) -> str:
    """The markdown report; returns its text."""
    h, w = meta["image_size"]
    steps = "measured to the end" if meta["timed_steps"] is None else (
        f"{meta['timed_steps']} step{'s' if meta['timed_steps'] > 1 else ''} timed, extrapolated to the recipe's steps")
    lines = [f"Speed at real scale, {meta['description']}, {h} x {w} input, {meta['device']}, {meta['date']}: "
             f"the cases ran {meta['case_seconds'] / 60:.0f} min in all; {steps}; {meta['positives']} forced "
             "positives per box "
             f"(each recipe keeps up to its max_positives); our step memory budget: {meta['max_memory_mb']} MiB.",
             "",
             f"Command: `{meta['command']}`.", ""]
    lines += markdown_table(
        ["method", "sec/object", "over COCO's size mix, one box per image", "peak mem (MiB)", "steps", "timing"],
        [[r["method"], f"{r['sec_per_object']:.2f}",
          "-" if r["sec_per_object_one_box_mix"] is None else f"{r['sec_per_object_one_box_mix']:.2f}",
          f"{r['peak_mem_mb']:.0f}", r["mean_steps"] or "-", "extrapolated" if r["extrapolated"] else "measured"]
         for r in rows])
    by = {r["method"]: r for r in rows}
    if meta["reference_over_ours"]:
        lines += ["", f"- reference / ours: **{meta['reference_over_ours']:.0f}x** faster per object (ours over the "
                  "boxes of the mixed images); one box per image, COCO's size mix: "
                  f"{by['reference']['sec_per_object_one_box_mix'] / by['bbam']['sec_per_object_one_box_mix']:.0f}x"]
    if meta["ours_over_gradcam"]:
        lines.append(f"- ours / Grad-CAM: {meta['ours_over_gradcam']:.1f}x the time per object")
    for name, ratio in meta.get("padded_over_unpadded", {}).items():
        lines.append(f"- {name}: windows padded to share forwards (bbam_padded) / one size per forward (bbam): "
                     f"{ratio:.2f}x the time")
    lines.append("")
    lines += markdown_table(
        ["case", "method", "boxes", "sec/object", "measured s", "s/step", "s outside steps", "peak mem (MiB)",
         "est. step mem (MiB)", "chunks", "window share", "positives"],
        [_case_cells(c) for c in meta["cases"]])
    lines += ["", "`*`: extrapolated: seconds outside the steps + seconds per step x the recipe's steps. "
              "window share: the mean share of the input's pixels in a box's context window (1: the whole image). "
              "est. step mem: the library's estimate of one step's memory for all boxes in one batch; the "
              "chunks (boxes per chunk) are what its default budget made of it."]
    return write_markdown(path, lines)


def _case_cells(case: dict) -> list[str]:
    """One case's cells in the report's table of cases ("-" where a method has no such figure)."""
    def cell(key: str, fmt: str) -> str:
        return "-" if case.get(key) is None else format(case[key], fmt)

    return [case["case"], case["method"], str(case["objects"]),
            f"{case['seconds'] / case['objects']:.2f}{'*' if case['extrapolated'] else ''}",
            f"{case['seconds_measured']:.1f}", cell("seconds_per_step", ".2f"), cell("seconds_outside_steps", ".1f"),
            f"{case['peak_mem_mb']:.0f}", cell("estimated_step_mem_mb", ".0f"),
            "/".join(map(str, case["chunks"])) if "seconds_per_step" in case else "-",
            cell("window_share", ".3f"), cell("mean_positives", ".0f")]

if __name__ == "__main__":
    main()
