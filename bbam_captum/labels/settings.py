"""The label chain's settings (:class:`LabelSettings`, and the dense CRF's :class:`DenseCRFSettings`),
apart from the chain itself so that reading them (the command line's defaults) needs no torch."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import SettingsError


@dataclass(frozen=True)
class DenseCRFSettings:
    """The original's CRF kernels (pixels, RGB levels) and its acceptance rules.

    Attributes:
        iterations: mean-field steps.
        pos_xy_std, pos_weight: the smoothness (Gaussian) kernel.
        bi_xy_std, bi_rgb_std, bi_weight: the appearance (bilateral) kernel.
        keep: posterior above which a pixel is foreground.
        small_box: a box below this share of the image whose mask covers under
            ``min_share`` of the box is retried from flat probabilities ``retry_probs``,
            the first giving over ``retry_share`` of the box kept.
        max_pixels: an image with more pixels is inferred on a grid downscaled to about this
            many (its spatial kernel widths scaled alike) and the posteriors are upsampled
            guided by the image's colours; 0 always infers at full resolution.
        window: each box is inferred on the part of the image (or grid) within this many
            widths of the bilateral kernel (``bi_xy_std``) of the box, the whole image where
            that reaches past it; 0: always the whole image.
    """

    iterations: int = 10
    pos_xy_std: float = 1.0
    pos_weight: float = 3.0
    bi_xy_std: float = 80.0
    bi_rgb_std: float = 3.0
    bi_weight: float = 4.0
    keep: float = 0.9
    small_box: float = 0.1
    min_share: float = 0.2
    retry_probs: tuple[float, ...] = (0.7, 0.8, 0.9, 0.95, 0.96)
    retry_share: float = 1 / 3
    max_pixels: int = 512 * 512
    # 3 widths: past them the kernel's weight is under 1.2 % of its peak (exp(-4.5)), and the prior is
    # zero outside the box (benchmarks/label_scale.py); an image of at most 240 px a side is always whole
    window: float = 3.0


MIN_CRF_PIXELS = 256  # the smallest CRF grid (16 x 16 for a square image) that crf_max_pixels may ask for


@dataclass(frozen=True)
class LabelSettings:
    """How BBAM maps become pseudo labels.

    With ``crf`` (the default, as the original implementation) each map goes through the
    box-wise dense CRF of :func:`bbam_captum.labels.crf.crf_masks` twice: with
    ``crf_fg_share`` it gives the instance mask and the semantic foreground, with the wider
    ``crf_bg_share`` the edge of the ignore band. Without ``crf`` the maps are blurred and
    cut at the thresholds ``theta_*`` and ``instance_threshold`` instead.

    Attributes:
        theta_fg: above it, semantic foreground of the box's class (without ``crf``).
        theta_bg: below it, background; between the two, ignore (255) (without ``crf``).
        instance_threshold: above it, the instance mask (inside the box) (without ``crf``).
        refine: apply the mask-proposal refinement of Eq. 4 to the masks (the paper refines
            its pseudo labels, with MCG proposals; here Felzenszwalb segments stand in).
        blur_sigma: Gaussian blur of the maps before thresholding, in pixels (without
            ``crf``, which blurs by its own rule); 0 disables.
        crf: use the dense CRF instead of the thresholds.
        crf_fg_share: share of a box's most-attributed pixels taken as certain
            foreground for the instance mask and semantic foreground (the original's
            1 - 0.85).
        crf_bg_share: the same for the outer edge of the ignore band (the original's 1 - 0.2).
        crf_blur: the Gaussian blur of each map before the CRF, in mask cells of its box (the
            map's own resolution): the CRF, not the cells, then draws the edges.
        crf_max_pixels: an image with more pixels is inferred on a grid of about this many
            (:class:`DenseCRFSettings`); 0: always at full resolution.
        crf_window: each box's CRF sees the image within this many widths of the bilateral
            kernel (80 px) of the box (:class:`DenseCRFSettings`); 0: the whole image.
        open_holes: take out of each mask the inner segments whose colours are likelier under
            its surroundings' than under its rim's (:func:`bbam_captum.labels.holes.open_holes`):
            the holes of rings and frames that the maps' cells fill in.
        hole_rim: the rim that ``open_holes`` never cuts into and reads the object's colours
            from, as a share of the box's longer side.
    """

    # Chosen on val images 0-7 with the bundled detector:
    # BBAM's maps are low-valued and patchy, so a blur and a low threshold work best.
    theta_fg: float = 0.1
    theta_bg: float = 0.05
    instance_threshold: float = 0.1
    # The paper's full chain (CRF, then Eq. 4), chosen across worlds by leave-one-world-out
    # (benchmarks/results/worlds.md): on the shapes world it costs 0.002-0.01 against the CRF
    # alone, on the camouflage and photo worlds it adds 0.02-0.04.
    refine: bool = True
    blur_sigma: float = 3.0
    crf: bool = True
    # The original's. Leave-one-world-out over 0.15, 0.25 and 0.35 picks 0.25 on every world for the labels
    # (instance mIoU +0.012 camouflage, +0.008 photo, +0.000 shapes; worlds.md), but the models trained on
    # them were not better (photo mask AP50 0.478 -> 0.456 over two seeds, camouflage 0.664 -> 0.660;
    # pipeline_*_fg025.md): what users train is the model, so 0.15 stays.
    crf_fg_share: float = 0.15
    crf_bg_share: float = 0.8
    # One cell (the map's own resolution), chosen by leave-one-world-out against 1/3 and 2/3
    # (2/3 was the original's stride rule): every world picks it, +0.012-0.022 instance mIoU.
    crf_blur: float = 1.0
    crf_max_pixels: int = DenseCRFSettings().max_pixels
    crf_window: float = DenseCRFSettings().window
    # Chosen across worlds by leave-one-world-out (worlds.md): every fold picks it, rings +0.02-0.03 and
    # frames +0.00-0.04 instance mIoU, no solid class moved by more than 0.001; the models trained on the
    # labels gain on photo and shapes and hold on camouflage (pipeline_*_holes.md). The rim: 6 % of the
    # box's longer side, against 12 %: every fold picks it once segments that reach into the rim are judged
    # by their part clear of it (a thin ring's hole lies about 7 % of the side inside its outer edge).
    open_holes: bool = True
    hole_rim: float = 0.06

    @property
    def needs_image(self) -> bool:
        """Whether the rules read the image (the CRF's colours, Eq. 4's segments, the holes' colours)."""
        return self.crf or self.refine or self.open_holes

    def __post_init__(self) -> None:
        if not 0.0 < self.crf_fg_share <= self.crf_bg_share <= 1.0:
            raise SettingsError(f"CRF shares must satisfy 0 < crf_fg_share <= crf_bg_share <= 1, got "
                                f"crf_fg_share={self.crf_fg_share}, crf_bg_share={self.crf_bg_share}")
        if not 0.0 <= self.theta_bg <= self.theta_fg <= 1.0:
            raise SettingsError(f"thresholds must satisfy 0 <= theta_bg <= theta_fg <= 1, got "
                                f"theta_bg={self.theta_bg}, theta_fg={self.theta_fg}")
        if not 0.0 <= self.instance_threshold <= 1.0:
            raise SettingsError(f"instance_threshold must lie in [0, 1], got {self.instance_threshold}")
        if not 0.0 <= self.crf_blur <= 10.0:
            raise SettingsError(f"crf_blur must lie in [0, 10] mask cells, got {self.crf_blur}")
        if self.crf_max_pixels < 0 or 0 < self.crf_max_pixels < MIN_CRF_PIXELS:
            raise SettingsError(f"crf_max_pixels must be >= 0 (0: full resolution) and, above 0, at least "
                                f"{MIN_CRF_PIXELS} (a 16 x 16 grid: the guided upsampling needs neighbours), got "
                                f"{self.crf_max_pixels}")
        if not 0.0 <= self.crf_window <= 100.0:
            raise SettingsError(f"crf_window must lie in [0, 100] kernel widths (0: the whole image), "
                                f"got {self.crf_window}")
        if not 0.0 < self.hole_rim < 0.5:
            raise SettingsError(f"hole_rim must lie in (0, 0.5) of the box's longer side, got {self.hole_rim}")
        if not 0.0 <= self.blur_sigma <= 100.0:
            raise SettingsError(f"blur_sigma must lie in [0, 100] px, got {self.blur_sigma}")
