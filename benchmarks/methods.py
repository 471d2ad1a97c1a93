"""The attribution methods compared by the benchmarks, each a small callable.

Every method explains the same thing: the detector's probability of class ``c`` for the
RoI equal to the box (the second stage, proposals fixed), and returns one map per box,
``Tensor[K, 1, H, W]`` with values in [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, Occlusion
from torch import Tensor

from bbam_captum import BBAM, BBAMSettings, BoxGradCAM
from bbam_captum.attr.gradcam import box_score
from bbam_captum.detectors import MMDetTwoStageAdapter
from bbam_captum.labels import instance_masks
from bbam_captum.ops import box_iou_pairwise


def _normalise(maps: Tensor) -> Tensor:
    """Scales each map of ``Tensor[K, 1, H, W]`` to [0, 1] by its maximum (zeros stay zeros)."""
    peak = maps.flatten(1).amax(1).clamp(min=1e-12)[:, None, None, None]
    return (maps.clamp(min=0) / peak).clamp(0, 1)


@dataclass
class BBAMMethod:
    """BBAM with the given settings."""

    name: str = "bbam"
    settings: BBAMSettings = field(default_factory=BBAMSettings)

    def __call__(self, adapter: MMDetTwoStageAdapter, image: Tensor, boxes: Tensor, targets: Tensor) -> Tensor:
        return BBAM(adapter).attribute(image, boxes, target=targets, settings=self.settings)


@dataclass
class BoxMethod:
    """The trivial baseline: the box filled with ones."""

    name: str = "box"

    def __call__(self, adapter: MMDetTwoStageAdapter, image: Tensor, boxes: Tensor, targets: Tensor) -> Tensor:
        ones = torch.ones((boxes.shape[0], 1, *image.shape[-2:]))
        return instance_masks(ones, boxes, 0.5).float()[:, None]


def _per_box(adapter: MMDetTwoStageAdapter, boxes: Tensor, targets: Tensor, gradients: bool,
             explain: Callable[[Callable[[Tensor], Tensor], Tensor], Tensor]) -> Tensor:
    """Runs ``explain(score, box) -> Tensor[1, 1, H, W]`` for each box's score with the
    detector frozen, and normalises the maps: ``Tensor[K, 1, H, W]`` in [0, 1]."""
    with adapter.frozen(), torch.set_grad_enabled(gradients):
        maps = [explain(box_score(adapter, box, int(target)), box) for box, target in zip(boxes, targets)]
    return _normalise(torch.cat(maps)).detach()


def _mean_colour_image(adapter: MMDetTwoStageAdapter, x: Tensor) -> Tensor:
    """The detector's pixel mean as an image shaped like ``x`` (Tensor[1, 3, H, W])."""
    return adapter.pixel_mean().expand_as(x[0])[None]


@dataclass
class GradCAMMethod:
    """Grad-CAM (Captum's ``LayerGradCam``) on the FPN level the box's RoI is pooled from."""

    name: str = "gradcam"

    def __call__(self, adapter: MMDetTwoStageAdapter, image: Tensor, boxes: Tensor, targets: Tensor) -> Tensor:
        return BoxGradCAM(adapter).attribute(image, boxes, target=targets)


@dataclass
class IntegratedGradientsMethod:
    """Captum's Integrated Gradients from the mean-colour image, |attribution| summed over channels."""

    name: str = "integrated_gradients"
    n_steps: int = 16

    def __call__(self, adapter: MMDetTwoStageAdapter, image: Tensor, boxes: Tensor, targets: Tensor) -> Tensor:
        x = image[None].float()
        baseline = _mean_colour_image(adapter, x)

        def explain(score: Callable[[Tensor], Tensor], box: Tensor) -> Tensor:
            attr = IntegratedGradients(score).attribute(x, baselines=baseline, n_steps=self.n_steps,
                                                        internal_batch_size=self.n_steps)
            return attr.abs().sum(1, keepdim=True)

        return _per_box(adapter, boxes, targets, True, explain)


@dataclass
class OcclusionMethod:
    """Captum's Occlusion: the score drop when a window is painted with the mean colour."""

    name: str = "occlusion"
    window: int = 24
    stride: int = 12

    def __call__(self, adapter: MMDetTwoStageAdapter, image: Tensor, boxes: Tensor, targets: Tensor) -> Tensor:
        x = image[None].float()
        baseline = _mean_colour_image(adapter, x)

        def explain(score: Callable[[Tensor], Tensor], box: Tensor) -> Tensor:
            attr = Occlusion(score).attribute(x, sliding_window_shapes=(3, self.window, self.window),
                                              strides=(3, self.stride, self.stride), baselines=baseline,
                                              perturbations_per_eval=32)
            return attr.sum(1, keepdim=True)

        return _per_box(adapter, boxes, targets, False, explain)


@dataclass
class DRISEMethod:
    """D-RISE-style randomised masking (Petsiuk et al., CVPR 2021) with the RoI fixed to the box.

    Each random mask (coarse binary grid, bilinearly upsampled with a random shift) is
    weighted by the detection similarity of the masked image: the class probability
    times the IoU of the regressed box with the box.
    """

    name: str = "drise"
    num_masks: int = 256
    cells: int = 8
    keep: float = 0.5
    batch: int = 32
    seed: int = 0

    def __call__(self, adapter: MMDetTwoStageAdapter, image: Tensor, boxes: Tensor, targets: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        g = torch.Generator().manual_seed(self.seed)
        x = image[None].float()
        mu = adapter.pixel_mean()
        cell_h, cell_w = height / self.cells, width / self.cells
        maps = torch.zeros(boxes.shape[0], 1, height, width)
        with adapter.frozen(), torch.no_grad():
            for start in range(0, self.num_masks, self.batch):
                n = min(self.batch, self.num_masks - start)
                grid = (torch.rand((n, 1, self.cells + 1, self.cells + 1), generator=g) < self.keep).float()
                up = F.interpolate(grid, size=(int((self.cells + 1) * cell_h), int((self.cells + 1) * cell_w)),
                                   mode="bilinear", align_corners=False)
                dy = torch.randint(0, max(1, int(cell_h)), (n,), generator=g)
                dx = torch.randint(0, max(1, int(cell_w)), (n,), generator=g)
                masks = torch.stack([up[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(n)])
                features = adapter.features(x * masks + mu * (1 - masks))
                for k, (box, target) in enumerate(zip(boxes, targets)):
                    rois = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], box.expand(n, 4)], 1)
                    out = adapter.roi_outputs(features, rois)
                    regressed = adapter.decode(rois[:, 1:], out.deltas[:, int(target)], height, width)
                    weight = out.probs[:, int(target)] * box_iou_pairwise(regressed, box.expand(n, 4))
                    maps[k] += (weight[:, None, None, None] * masks).sum(0)
        return _normalise(maps)


def default_methods(quick: bool, bbam_steps: int | None = None) -> list:
    """BBAM (defaults and the paper's ablations), Grad-CAM, Captum peers, D-RISE, box."""
    base = BBAMSettings(steps=bbam_steps) if bbam_steps else BBAMSettings()
    methods: list = [
        BBAMMethod("bbam", base),
        BBAMMethod("bbam_box_head_only", base.override(cls_head=False)),
        BBAMMethod("bbam_cls_head_only", base.override(box_head=False)),
    ]
    for stride in (4, 8, 16, 32) if not quick else (8,):
        methods.append(BBAMMethod(f"bbam_stride_{stride}", base.override(stride=stride)))
    methods += [GradCAMMethod(), IntegratedGradientsMethod(), OcclusionMethod(), DRISEMethod(), BoxMethod()]
    return methods
