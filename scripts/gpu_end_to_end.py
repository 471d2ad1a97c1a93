"""The GPU path end to end: a synthetic split, then BBAM's labels with torchvision's ResNet-50-FPN
Faster R-CNN (random weights, no download) on CUDA, through ``generate_labels`` or, with ``--cli``,
through ``bbam-captum generate --torchvision``; with ``--mmdet``, through ``bbam-captum generate``
with the bundled MMDetection detector (on CUDA its RoIAlign runs through torchvision where mmcv
lacks CUDA ops).

    python scripts/gpu_end_to_end.py --out DIR [--cli | --mmdet]                     # one process
    torchrun --nproc_per_node N scripts/gpu_end_to_end.py --out DIR --dist [--cli]   # NCCL, one GPU per rank

``--batch-images N`` and ``--window-padding S`` pass on to BBAM (images optimised together,
windows of several sizes in one forward).

Labels are thresholded (``--no-crf``) so that the machine needs no pydensecrf. ``--device cpu``
runs the same on a CPU (gloo under torchrun). Prints, on rank 0, the device, the seconds, and
what was written. ``--cli --dist`` joins the process group as ``generate --launcher pytorch``
does: through mmengine on CUDA.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from bbam_captum import TorchvisionRCNNAdapter
from bbam_captum.cli.main import main as cli
from bbam_captum.labels import LabelSettings
from bbam_captum.pipeline import generate_labels
from bbam_captum.synth import CLASSES, write_dataset


def _with_api(args: argparse.Namespace, data: Path, out: Path, device: torch.device) -> dict | None:
    if args.dist:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(0)  # the same random weights on every rank
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(CLASSES) + 1)
    adapter = TorchvisionRCNNAdapter(model.to(device).eval(), CLASSES)
    return generate_labels(adapter, data / "annotations.json", data / "images", out,
                           labels=LabelSettings(crf=False), steps=args.steps, batch_images=args.batch_images,
                           window_padding=args.window_padding)


def _with_cli(args: argparse.Namespace, data: Path, out: Path, device: torch.device) -> dict | None:
    checkpoint, classes = args.out / "random_r50_fpn.pth", args.out / "classes.txt"
    rank = int(os.environ.get("RANK", 0))
    if rank == 0 and not checkpoint.is_file():
        torch.manual_seed(0)
        model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(CLASSES) + 1)
        classes.write_text("\n".join(CLASSES) + "\n")  # before the checkpoint, which the other ranks wait for
        torch.save(model.state_dict(), checkpoint.with_suffix(".tmp"))
        checkpoint.with_suffix(".tmp").rename(checkpoint)
    while not checkpoint.is_file():  # the other ranks wait for rank 0's files (no process group yet)
        time.sleep(0.5)
    detector = [] if args.mmdet else ["--torchvision", "fasterrcnn_resnet50_fpn", "--checkpoint", str(checkpoint),
                                      "--classes", str(classes)]
    code = cli(["generate", "--ann", str(data / "annotations.json"), "--img-dir", str(data / "images"),
                "--out", str(out), *detector, "--device", str(device), "--steps", str(args.steps), "--no-crf",
                "--batch-images", str(args.batch_images), "--window-padding", str(args.window_padding),
                "--launcher", "pytorch" if args.dist else "none"])
    if code not in (0, 1):
        raise SystemExit(code)
    return json.loads((out / "summary.json").read_text()) if rank == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--dist", action="store_true", help="under torchrun: join its process group")
    parser.add_argument("--cli", action="store_true", help="through bbam-captum generate --torchvision")
    parser.add_argument("--mmdet", action="store_true",
                        help="through bbam-captum generate with the bundled MMDetection detector")
    parser.add_argument("--batch-images", type=int, default=1, help="images optimised together (default: 1)")
    parser.add_argument("--window-padding", type=float, default=0.0, help="BBAM's window_padding (default: 0)")
    args = parser.parse_args()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    data = args.out / "data"
    if int(os.environ.get("RANK", 0)) == 0 and not (data / "annotations.json").is_file():
        write_dataset(data, args.images, 1, show_progress=False)
    while not (data / "annotations.json").is_file():
        time.sleep(0.5)
    out = args.out / (("mmdet" if args.mmdet else "cli" if args.cli else "api") + ("_dist" if args.dist else ""))
    start = time.perf_counter()
    summary = (_with_cli if args.cli or args.mmdet else _with_api)(args, data, out, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    if summary is not None:
        label_files = len(list((out / "mmseg" / "labels").glob("*.png")))
        where = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        print(f"{'generate' if args.cli or args.mmdet else 'generate_labels'} "
              f"{'(MMDetection) ' if args.mmdet else ''}{'under torchrun' if args.dist else 'in one process'} "
              f"on {where}: {time.perf_counter() - start:.1f} s, {summary['boxes_labelled']}/{summary['boxes']} boxes "
              f"of {summary['images']} images labelled, {len(summary['failures'])} failures, {label_files} label "
              f"files, COCO labels {'written' if (out / 'coco' / 'instances.json').is_file() else 'missing'}",
              flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
