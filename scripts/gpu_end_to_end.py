"""The GPU path end to end without MMDetection: a synthetic split, then ``generate_labels`` with
torchvision's ResNet-50-FPN Faster R-CNN (random weights, no download) on CUDA.

    python scripts/gpu_end_to_end.py --out DIR                               # one process
    torchrun --nproc_per_node N scripts/gpu_end_to_end.py --out DIR --dist   # NCCL, one GPU per rank

Labels are thresholded (``LabelSettings(crf=False)``) so that the machine needs no pydensecrf.
Prints, on rank 0, the device, the seconds, and what was written.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from bbam_captum import TorchvisionRCNNAdapter
from bbam_captum.labels import LabelSettings
from bbam_captum.pipeline import generate_labels
from bbam_captum.synth import CLASSES, write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--dist", action="store_true", help="join torchrun's process group (NCCL)")
    args = parser.parse_args()
    if args.dist:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        torch.distributed.init_process_group("nccl")
    rank = torch.distributed.get_rank() if args.dist else 0
    data = args.out / "data"
    if rank == 0 and not (data / "annotations.json").is_file():
        write_dataset(data, args.images, 1, show_progress=False)
    if args.dist:
        torch.distributed.barrier()
    torch.manual_seed(0)  # the same random weights on every rank
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(CLASSES) + 1)
    adapter = TorchvisionRCNNAdapter(model.cuda().eval(), CLASSES)
    out = args.out / ("labels_dist" if args.dist else "labels")
    start = time.perf_counter()
    summary = generate_labels(adapter, data / "annotations.json", data / "images", out,
                              labels=LabelSettings(crf=False), steps=args.steps)
    torch.cuda.synchronize()
    if summary is not None:
        label_files = len(list((out / "mmseg" / "labels").glob("*.png")))
        print(f"{'torchrun' if args.dist else 'one process'} on {torch.cuda.get_device_name()}: "
              f"{time.perf_counter() - start:.1f} s, {summary['boxes_labelled']}/{summary['boxes']} boxes of "
              f"{summary['images']} images labelled, {len(summary['failures'])} failures, {label_files} label files, "
              f"COCO labels {'written' if (out / 'coco' / 'instances.json').is_file() else 'missing'}", flush=True)
    if args.dist:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
