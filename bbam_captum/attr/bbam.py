"""BBAM: Bounding Box Attribution Map (Lee, Yi, Shin and Yoon, CVPR 2021)."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from captum._utils.progress import progress
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from ..detectors.adapt import as_adapter
from ..detectors.base import Crop, DetectorAdapter
from ..ops import adaptive_stride, check_boxes, initial_mask, perturb, to_rois, total_variation, upsample_mask
from ..utils.deprecation import renamed_argument
from .memory import StepMemoryEstimate, estimate_step_memory
from .proposals import PositiveProposals, PositiveSelector, select_positives
from .settings import FROM_SETTINGS, BBAMSettings, FromSettings
from ._utils import format_baselines, format_image, format_target

TargetType = int | Sequence[int] | Tensor | None
#: ``(adapter, image, mu, masks, positives, crops, settings, show_progress) -> (losses, steps)``: what
#: :class:`BBAM` calls (``optimise_masks=``) to optimise one chunk of masks; :func:`optimise_masks` by default.
MaskOptimiser = Callable[[DetectorAdapter, Tensor, Tensor, list[Tensor], list[PositiveProposals], list[Crop] | None,
                          BBAMSettings, bool], tuple[list[float], list[int]]]


@dataclass
class BoxRecord:
    """What happened for one box during :meth:`BBAM.attribute`.

    Attributes:
        target: the class explained.
        stride: image pixels per mask cell.
        num_positives: proposals in O+ (used in the loss).
        iou_threshold: the IoU threshold that selected them (None with the fallback).
        fallback: True when no jittered proposal was positive and the box itself was used.
        steps: optimisation steps run for this box.
        final_loss: the box's last total loss (L1 + perturbation + TV).
    """

    target: int
    stride: int
    num_positives: int
    iou_threshold: float | None
    fallback: bool
    steps: int
    final_loss: float


def optimise_masks(adapter: DetectorAdapter, image: Tensor, mu: Tensor, masks: list[Tensor],
                   positives: list[PositiveProposals], crops: list[Crop] | None, settings: BBAMSettings,
                   show_progress: bool = False) -> tuple[list[float], list[int]]:
    """BBAM's optimisation: Adam on all masks at once, in place; boxes that have converged leave the batch.

    Args:
        adapter (DetectorAdapter): the detector, frozen.
        image (Tensor[1, 3, H, W]): the input, float.
        mu (Tensor): what masked-out pixels become, broadcastable to ``image``.
        masks (list of K Tensor[1, 1, h, w]): each box's mask grid, requiring gradients.
        positives (list of K :class:`~bbam_captum.attr.proposals.PositiveProposals`): each box's O+.
        crops (list of K Crop, or None): each box's context window; None: the whole input.
        settings (BBAMSettings): the loss's terms, ``steps``, ``lr``, the early stop and
            ``window_padding`` are used.
        show_progress (bool, optional): a progress bar over steps. Default: False

    Returns:
        (losses, steps): each box's last total loss and the steps it ran.
    """
    return optimise_image_masks(adapter, [image], [mu], [0] * len(masks), masks, positives, crops, settings,
                                show_progress)


def optimise_image_masks(adapter: DetectorAdapter, images: Sequence[Tensor], mus: Sequence[Tensor],
                         owners: Sequence[int], masks: list[Tensor], positives: list[PositiveProposals],
                         crops: list[Crop] | None, settings: BBAMSettings,
                         show_progress: bool = False) -> tuple[list[float], list[int]]:
    """:func:`optimise_masks` for the boxes of several images at once: boxes of images of one size
    share the batched forwards as the boxes of one image do.

    Args:
        images (sequence of Tensor[1, 3, H_i, W_i]), mus (sequence, one per image): the inputs
            and what their masked-out pixels become.
        owners (sequence of K ints): the image of each box.
        adapter, masks, positives, crops, settings, show_progress: as :func:`optimise_masks`.

    Returns:
        (losses, steps): each box's last total loss and the steps it ran.
    """
    steps, patience, tol = settings.steps, settings.early_stop_patience, settings.early_stop_tol
    optimiser = torch.optim.Adam(masks, lr=settings.lr)
    num_boxes = len(masks)
    active = list(range(num_boxes))
    best = [float("inf")] * num_boxes
    since_best = [0] * num_boxes
    last_loss = [float("nan")] * num_boxes
    steps_run = [0] * num_boxes
    device = images[0].device
    bar = progress(range(steps), desc="BBAM", total=steps, disable=not show_progress)
    for _ in bar:
        if not active:
            break
        outputs = {}
        for group in _forward_groups(active, images, owners, crops, settings.window_padding):
            height, width = images[owners[group[0]]].shape[-2:]
            if len({owners[k] for k in group}) == 1:  # one image: mu broadcast over the batch
                upsampled = torch.cat([upsample_mask(masks[k], height, width) for k in group])  # [G, 1, H, W]
                perturbed = perturb(images[owners[group[0]]], upsampled, mus[owners[group[0]]])  # [G, 3, H, W]
            else:
                perturbed = torch.cat([perturb(images[owners[k]], upsample_mask(masks[k], height, width),
                                               mus[owners[k]]) for k in group])
            features = adapter.features(perturbed, None if crops is None else [crops[k] for k in group])
            rois = to_rois([positives[k].rois for k in group])  # [P, 5]
            out = adapter.roi_outputs(features, rois)
            sizes = [len(positives[k].rois) for k in group]
            outputs.update(zip(group, zip(out.probs.split(sizes), out.deltas.split(sizes))))
        per_box = []
        for k in active:
            pos = positives[k]
            probs, deltas = outputs[k]
            term = torch.zeros((), device=device)
            if settings.cls_head:
                term = term + (probs[:, pos.target] - pos.probs).abs().mean() / 2
            if settings.box_head:
                term = term + (deltas[:, pos.target] - pos.deltas).abs().mean() / 2
            term = term + settings.l1_coef * masks[k].sum()
            if settings.tv_coef:
                term = term + settings.tv_coef * total_variation(masks[k], settings.tv_power).sum()
            per_box.append(term)
        optimiser.zero_grad(set_to_none=True)
        torch.stack(per_box).sum().backward()
        optimiser.step()
        with torch.no_grad():
            for m in masks:
                m.clamp_(0, 1)
        still_active = []
        for k, loss in zip(active, per_box):
            value = float(loss.detach())
            last_loss[k] = value
            steps_run[k] += 1
            if value < best[k] * (1 - tol):
                best[k], since_best[k] = value, 0
            else:
                since_best[k] += 1
            if patience is None or since_best[k] < patience:
                still_active.append(k)
            else:
                masks[k].requires_grad_(False)
        active = still_active
    return last_loss, steps_run


def _forward_groups(active: list[int], images: Sequence[Tensor], owners: Sequence[int], crops: list[Crop] | None,
                    padding: float) -> list[list[int]]:
    """The boxes of each batched forward: boxes of images of one size, grouped by their windows
    (:func:`group_windows`)."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for k in active:
        by_size.setdefault(tuple(images[owners[k]].shape[-2:]), []).append(k)
    return [group for boxes in by_size.values() for group in group_windows(boxes, crops, padding)]


class BBAM(PerturbationAttribution):
    r"""Bounding Box Attribution Map.

    For each box, BBAM finds the smallest mask M over the image such that the detector,
    fed ``Phi(I, M) = I * M + mu * (1 - M)``, still gives the same class probability
    (cls head) and box regression (box head) for the box's proposals as on the original
    image. It minimises, by gradient descent on M (a low-resolution grid upsampled
    bilinearly to the image),

        ``l1_coef * |M|_1 + E_{o in O+}[ box_head * |t_c - f_box(Phi, o)|_1 / 2
        + cls_head * |p_c - f_cls(Phi, o)| / 2 ] + tv_coef * TV(M)``,

    where O+ holds the jittered proposals of the box that the detector classifies as the
    target class with a regressed box of IoU above a threshold with the box (Eq. 3).
    All boxes of an image are optimised together: each step runs one batched forward per
    size of context window (one in all with ``context=None``; windows of several sizes share
    one with ``window_padding``); the detector's weights get no gradients and its RPN never
    runs. Where that batch would not fit the memory budget (``max_memory_mb``), the boxes are
    optimised in chunks, one after another; every box has its own loss, Adam state and early
    stop, so the maps are those of one batch. :meth:`attribute_images` does the same for the
    boxes of several images at once.

    Paper: https://arxiv.org/abs/2103.08907

    Args:
        model (torch.nn.Module or DetectorAdapter): an MMDetection two-stage detector
            (e.g. from :func:`bbam_captum.load_detector`), a torchvision Faster R-CNN or
            Mask R-CNN (e.g. ``fasterrcnn_resnet50_fpn(weights=...)``; wrap it in
            :class:`~bbam_captum.detectors.TorchvisionRCNNAdapter` to give its class
            names), or an adapter for another detector family.
        select_positives (callable, optional): ``(adapter, image, boxes, targets, settings)
            -> list of PositiveProposals``, O+ of each box with the detector's outputs on the
            unperturbed image. Default: :func:`~bbam_captum.attr.proposals.select_positives`
            (jittered proposals the detector still classifies and regresses onto the box)
        estimate_step_memory (callable, optional): ``(adapter, image, mu, masks, positives,
            crops) -> bytes per box``, the step memory that ``max_memory_mb`` chunks the boxes
            by. Default: :func:`~bbam_captum.attr.memory.estimate_step_memory`
        optimise_masks (callable, optional): ``(adapter, image, mu, masks, positives, crops,
            settings, show_progress) -> (losses, steps)``, the optimisation of one chunk of
            masks, in place. Default: :func:`optimise_masks`

    The three callables are extension points, for instance to time the optimisation or to
    give a detector with random weights positives; the defaults are the method.
    """

    def __init__(self, model: torch.nn.Module | DetectorAdapter,
                 select_positives: PositiveSelector = select_positives,
                 estimate_step_memory: StepMemoryEstimate = estimate_step_memory,
                 optimise_masks: MaskOptimiser = optimise_masks) -> None:
        adapter = as_adapter(model, "BBAM")
        PerturbationAttribution.__init__(self, adapter.roi_outputs)
        self.adapter = adapter
        self.select_positives = select_positives
        self.estimate_step_memory = estimate_step_memory
        self.optimise_masks = optimise_masks

    @property
    def extensions(self) -> dict[str, str]:
        """The extension points set to other callables than the method's own, each named by its
        module and qualified name; empty for BBAM as published. The pipeline keys saved maps by
        it, so that maps made with, say, another optimiser are not reused as the method's (a
        callable changed under the same name needs ``force``)."""
        own = {"select_positives": select_positives, "estimate_step_memory": estimate_step_memory,
               "optimise_masks": optimise_masks}
        return {name: f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
                for name, default in own.items() if (fn := getattr(self, name)) is not default}

    @torch.enable_grad()
    @log_usage(part_of_slo=True)
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        boxes: Tensor,
        target: TargetType = None,
        baselines: Tensor | Sequence[float] | None = None,
        settings: BBAMSettings | None = None,
        box_head: bool | FromSettings = FROM_SETTINGS,
        cls_head: bool | FromSettings = FROM_SETTINGS,
        l1_coef: float | FromSettings = FROM_SETTINGS,
        tv_coef: float | FromSettings = FROM_SETTINGS,
        tv_power: float | FromSettings = FROM_SETTINGS,
        stride: int | str | FromSettings = FROM_SETTINGS,
        stride_range: tuple[float, float] | FromSettings = FROM_SETTINGS,
        steps: int | FromSettings = FROM_SETTINGS,
        lr: float | FromSettings = FROM_SETTINGS,
        num_proposals: int | FromSettings = FROM_SETTINGS,
        max_shift: float | FromSettings = FROM_SETTINGS,
        iou_thresholds: Sequence[float] | FromSettings = FROM_SETTINGS,
        max_positives: int | FromSettings = FROM_SETTINGS,
        early_stop_patience: int | None | FromSettings = FROM_SETTINGS,
        early_stop_tol: float | FromSettings = FROM_SETTINGS,
        context: float | None | FromSettings = FROM_SETTINGS,
        seed: int | FromSettings = FROM_SETTINGS,
        max_memory_mb: float | str | None | FromSettings = FROM_SETTINGS,
        window_padding: float | FromSettings = FROM_SETTINGS,
        show_progress: bool = False,
        return_records: bool = False,
        baseline: Tensor | Sequence[float] | None = None,
    ) -> Tensor | tuple[Tensor, list[BoxRecord]]:
        r"""
        Args:
            inputs (Tensor): one image, ``(3, H, W)`` or ``(1, 3, H, W)``, RGB, values
                0..255 (uint8 or float).
            boxes (Tensor): ``(K, 4)`` or ``(4,)``, ``(x1, y1, x2, y2)`` in the image's
                pixels. Boxes partly outside the image are clipped.
            target (int, list, Tensor or None, optional): class index per box (one int
                for all boxes, or K of them). None: the detector's own top class for
                each box. Default: None
            baselines (Tensor or sequence of 3 floats, optional): mu, what masked-out
                pixels become: an RGB colour (3,) or an image (3, H, W) / (1, 3, H, W),
                e.g. a blurred copy. Default: the detector's pixel mean.
            settings (BBAMSettings, optional): the method's settings; their fields, meaning
                and defaults are documented on :class:`~bbam_captum.BBAMSettings`.
                Default: ``BBAMSettings()``
            box_head, cls_head, l1_coef, tv_coef, tv_power, stride, stride_range, steps, lr,
                num_proposals, max_shift, iou_thresholds, max_positives, early_stop_patience,
                early_stop_tol, context, seed, max_memory_mb, window_padding (optional): each overrides the
                field of the same name of ``settings``. Default: ``FROM_SETTINGS``, the
                field's value in ``settings``
            show_progress (bool, optional): show a progress bar over steps. Default: False
            return_records (bool, optional): also return a :class:`BoxRecord` per box.
                Default: False
            baseline: deprecated name of ``baselines``.

        Returns:
            Tensor ``(K, 1, H, W)`` with values in [0, 1], one map per box at the image's
            size; with ``return_records``, a tuple ``(maps, records)``.

        Fallback: a box with no positive proposal is optimised with the box itself as
        the only proposal, its targets taken from the unperturbed image; its record says
        ``fallback=True``.
        """
        # stacklevel 5: past this method and log_usage's and enable_grad's wrappers, to the caller's line
        baselines = renamed_argument(baselines, baseline, "baselines", "baseline", "BBAM.attribute", stacklevel=5)
        settings = (BBAMSettings() if settings is None else settings).override(
            box_head=box_head, cls_head=cls_head, l1_coef=l1_coef, tv_coef=tv_coef, tv_power=tv_power, stride=stride,
            stride_range=stride_range, steps=steps, lr=lr, num_proposals=num_proposals, max_shift=max_shift,
            iou_thresholds=iou_thresholds, max_positives=max_positives, early_stop_patience=early_stop_patience,
            early_stop_tol=early_stop_tol, context=context, seed=seed, max_memory_mb=max_memory_mb,
            window_padding=window_padding)
        problem = self._problem(inputs, boxes, baselines, settings)
        budget_mb = _memory_budget_mb(settings.max_memory_mb, problem.image.device)
        with self.adapter.frozen():
            self._select(problem, target, settings)
            losses, steps_run = self._optimise([problem], settings, budget_mb, show_progress)
        return _results(problem, losses, steps_run, return_records)

    @torch.enable_grad()
    def attribute_images(
        self,
        inputs: Sequence[Tensor],
        boxes: Sequence[Tensor],
        target: Sequence[TargetType] | None = None,
        baselines: Tensor | Sequence[float] | None = None,
        settings: BBAMSettings | None = None,
        show_progress: bool = False,
        return_records: bool = False,
    ) -> list[Tensor] | list[tuple[Tensor, list[BoxRecord]]]:
        r""":meth:`attribute` for several images at once: the boxes of all of them are optimised
        together, so that boxes of images of one size share the batched forwards (windows grouped
        as within one image, see ``window_padding``). On a GPU, where a forward of a few small
        windows leaves it mostly idle, this keeps it busier; each box's map is the one
        :meth:`attribute` gives it (to float rounding: batches of other sizes), since every box has
        its own loss, Adam state and early stop. The memory budget chunks the boxes of all images.

        Args:
            inputs (sequence of N Tensor): the images, each as :meth:`attribute`'s ``inputs``.
            boxes (sequence of N Tensor): each image's boxes, ``(K_i, 4)`` or ``(4,)``.
            target (sequence of N targets, or None): each image's ``target`` as :meth:`attribute`'s.
                Default: None (the detector's top class for every box)
            baselines (Tensor or sequence of 3 floats, optional): mu, one colour for all images or
                an image of each one's size when all have one size. Default: the detector's pixel mean
            settings (BBAMSettings, optional): as :meth:`attribute`'s. Default: ``BBAMSettings()``
            show_progress (bool, optional): a progress bar over steps. Default: False
            return_records (bool, optional): also return each box's :class:`BoxRecord`. Default: False

        Returns:
            A list of N results, each as :meth:`attribute` returns for its image.

        With an ``optimise_masks`` extension other than the method's own, the images are
        optimised one after another through it.
        """
        if len(inputs) != len(boxes) or (target is not None and len(target) != len(inputs)):
            raise ValueError(f"expected one entry of boxes (and of target) per image ({len(inputs)}), got "
                             f"{len(boxes)} boxes and {None if target is None else len(target)} targets")
        settings = BBAMSettings() if settings is None else settings
        targets = [None] * len(inputs) if target is None else list(target)
        if self.optimise_masks is not optimise_masks:
            return [self.attribute(i, b, target=t, baselines=baselines, settings=settings,
                                   show_progress=show_progress, return_records=return_records)
                    for i, b, t in zip(inputs, boxes, targets)]
        problems = [self._problem(i, b, baselines, settings) for i, b in zip(inputs, boxes)]
        if not problems:
            return []
        budget_mb = _memory_budget_mb(settings.max_memory_mb, problems[0].image.device)
        with self.adapter.frozen():
            for problem, t in zip(problems, targets):
                self._select(problem, t, settings)
            losses, steps_run = self._optimise(problems, settings, budget_mb, show_progress)
        results, first = [], 0
        for problem in problems:
            last = first + len(problem.boxes)
            results.append(_results(problem, losses[first:last], steps_run[first:last], return_records))
            first = last
        return results

    def _problem(self, inputs: Tensor, boxes: Tensor, baselines: Tensor | Sequence[float] | None,
                 settings: BBAMSettings) -> _ImageProblem:
        """One image's input, boxes and mu, checked."""
        image = format_image(inputs, self.adapter.device)  # [1, 3, H, W] float
        height, width = image.shape[-2:]
        boxes = check_boxes(boxes, height, width).to(image.device)  # [K, 4]
        mu = format_baselines(baselines, self.adapter.pixel_mean(), image)
        return _ImageProblem(image, boxes, mu)

    def _select(self, problem: _ImageProblem, target: TargetType, settings: BBAMSettings) -> None:
        """Targets, O+, mask cells, initial masks and windows of one image's boxes (detector frozen)."""
        image, boxes = problem.image, problem.boxes
        height, width = image.shape[-2:]
        with torch.no_grad():
            problem.targets = format_target(target, boxes, image, self.adapter)  # [K]
            problem.positives = self.select_positives(self.adapter, image, boxes, problem.targets, settings)
        problem.strides = [adaptive_stride(b, height, width, settings.stride_range) if settings.stride == "adaptive"
                           else int(settings.stride) for b in boxes]
        problem.masks = [initial_mask(p.regressed, s, height, width).requires_grad_(True)
                         for p, s in zip(problem.positives, problem.strides)]
        problem.crops = None if settings.context is None else [
            self.adapter.crop(context_window(p, b, settings.context, height, width), height, width)
            for p, b in zip(problem.positives, boxes)]

    def _optimise(self, problems: list[_ImageProblem], settings: BBAMSettings, budget_mb: float | None,
                  show_progress: bool) -> tuple[list[float], list[int]]:
        """Every box of ``problems`` optimised, in memory chunks; each box's last loss and steps."""
        owners = [i for i, problem in enumerate(problems) for _ in problem.boxes]
        masks = [m for problem in problems for m in problem.masks]
        positives = [p for problem in problems for p in problem.positives]
        crops = None if problems[0].crops is None else [c for problem in problems for c in problem.crops]
        chunks = [list(range(len(masks)))]
        if budget_mb is not None and len(masks) > 1:
            costs = [c for problem in problems for c in self.estimate_step_memory(
                self.adapter, problem.image, problem.mu, problem.masks, problem.positives, problem.crops)]
            # a padded window may hold up to (1 + window_padding) times its pixels
            chunks = _chunks([c * (1 + settings.window_padding) for c in costs], budget_mb * 2**20)
        losses, steps_run = [0.0] * len(masks), [0] * len(masks)
        for chunk in chunks:
            chunk_args = ([masks[k] for k in chunk], [positives[k] for k in chunk],
                          None if crops is None else [crops[k] for k in chunk], settings, show_progress)
            if len(problems) == 1:  # the extension point's own signature: one image
                chunk_losses, chunk_steps = self.optimise_masks(self.adapter, problems[0].image, problems[0].mu,
                                                                *chunk_args)
            else:
                chunk_losses, chunk_steps = optimise_image_masks(
                    self.adapter, [p.image for p in problems], [p.mu for p in problems], [owners[k] for k in chunk],
                    *chunk_args)
            for k, loss, n in zip(chunk, chunk_losses, chunk_steps):
                losses[k], steps_run[k] = loss, n
        return losses, steps_run


@dataclass
class _ImageProblem:
    """One image's part of a BBAM run: its input, boxes and mu, then (:meth:`BBAM._select`) each
    box's target, O+, mask cell, mask and window."""

    image: Tensor
    boxes: Tensor
    mu: Tensor
    targets: Tensor | None = None
    positives: list[PositiveProposals] = field(default_factory=list)
    strides: list[int] = field(default_factory=list)
    masks: list[Tensor] = field(default_factory=list)
    crops: list[Crop] | None = None


def _results(problem: _ImageProblem, losses: list[float], steps_run: list[int],
             return_records: bool) -> Tensor | tuple[Tensor, list[BoxRecord]]:
    """One image's maps (K, 1, H, W) at its size, with its records when asked."""
    height, width = problem.image.shape[-2:]
    maps = torch.cat([upsample_mask(m.detach(), height, width) for m in problem.masks]).clamp(0, 1)
    if not return_records:
        return maps
    records = [BoxRecord(target=int(t), stride=s, num_positives=len(p.rois), iou_threshold=p.iou_threshold,
                         fallback=p.fallback, steps=n, final_loss=float(loss))
               for t, s, p, n, loss in zip(problem.targets, problem.strides, problem.positives, steps_run, losses)]
    return maps, records


def _memory_budget_mb(setting: float | str | None, device: torch.device) -> float | None:
    """The step memory budget in MiB: the setting (checked by :class:`BBAMSettings`), or with
    "auto" half the free memory."""
    if setting is None:
        return None
    if setting == "auto":
        if device.type == "cuda":
            return torch.cuda.mem_get_info(device)[0] / 2**21
        return _available_cpu_bytes() / 2**21
    return float(setting)


def _available_cpu_bytes() -> int:
    """The memory the system could give this process without swapping: Linux's MemAvailable,
    elsewhere the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _chunks(costs: list[float], budget: float) -> list[list[int]]:
    """Box indices in chunks whose costs add up to at most ``budget`` (a box over it alone),
    filled from the costliest box down so that boxes of similar windows share a chunk."""
    chunks: list[list[int]] = []
    used = 0.0
    for k in sorted(range(len(costs)), key=lambda k: -costs[k]):
        if not chunks or used + costs[k] > budget:
            chunks.append([])
            used = 0.0
        chunks[-1].append(k)
        used += costs[k]
    return [sorted(chunk) for chunk in chunks]


def group_windows(boxes: list[int], crops: Sequence[Crop] | None, padding: float = 0.0) -> list[list[int]]:
    """The boxes that share each batched forward: without crops, all; else boxes whose windows
    have one size, and with ``padding`` > 0 also boxes whose windows, padded to the largest
    width and height of their group, hold at most ``1 + padding`` times their own pixels.

    Groups are filled from the largest window down, each window joining the first group that
    takes it without padding any member past the bound; each group lists its boxes in their order
    in ``boxes``, and the groups come in the order of their first box.

    Args:
        boxes (list of int): indices into ``crops``.
        crops (sequence of Crop, or None): every box's window.
        padding (float): the padded pixels allowed, as a share of each window's own. Default: 0.0

    Returns:
        list of groups, each a list of box indices.
    """
    if crops is None:
        return [list(boxes)]
    groups: list[list[int]] = []
    sizes: list[tuple[int, int]] = []  # each group's padded (width, height)
    for k in sorted(boxes, key=lambda k: (-crops[k].width * crops[k].height, -crops[k].width, k)):
        w, h = crops[k].width, crops[k].height
        for g, (gw, gh) in enumerate(sizes):
            width, height = max(gw, w), max(gh, h)
            if all(width * height <= (1 + padding) * crops[m].width * crops[m].height for m in groups[g] + [k]):
                groups[g].append(k)
                sizes[g] = (width, height)
                break
        else:
            groups.append([k])
            sizes.append((w, h))
    # in the boxes' order, as they were given: with padding 0 the groups of windows of one size
    position = {k: i for i, k in enumerate(boxes)}
    return sorted((sorted(group, key=position.get) for group in groups), key=lambda group: position[group[0]])


def context_window(positives: PositiveProposals, box: Tensor, context: float, height: int, width: int) -> Tensor:
    """Tensor[4]: the union of a box's positive proposals and their regressed boxes, grown
    on each side by ``context`` times the box's width (x) or height (y), cut to the image
    (so that a huge ``context`` gives the whole image, not an infinite window)."""
    corners = torch.cat([positives.rois, positives.regressed, box[None]])
    lo, hi = corners[:, :2].min(0).values, corners[:, 2:].max(0).values
    margin = context * (box[2:] - box[:2])
    size = torch.tensor([width, height], dtype=lo.dtype, device=lo.device)
    return torch.cat([torch.minimum((lo - margin).clamp(min=0), size), torch.minimum((hi + margin).clamp(min=0), size)])

