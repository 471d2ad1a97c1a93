"""BBAM's boxes in chunks under a memory budget: the same maps as one batch."""
from __future__ import annotations

import pytest
import torch

from bbam_captum import BBAM, BBAMSettings, load_detector
from bbam_captum.attr import bbam as bbam_module
from bbam_captum.attr import estimate_step_memory, optimise_masks, select_positives
from bbam_captum.synth import draw_image

FAST = dict(steps=4, num_proposals=32, max_positives=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """192 px images gain nothing from a second thread, and lose a lot on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detector():
    return load_detector()


@pytest.fixture(scope="module")
def scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A synthetic image with 5 boxes: its objects, then boxes around parts of it."""
    rgb, objects = draw_image(1, 3)
    image = torch.from_numpy(rgb).permute(2, 0, 1)
    boxes = [list(o.bbox_xyxy) for o in objects] + [[10, 12, 70, 60], [100, 90, 180, 170], [40, 120, 90, 186]]
    labels = [o.label for o in objects] + [0, 1, 2]
    return image, torch.tensor(boxes[:5], dtype=torch.float32), torch.tensor(labels[:5])


class _Counting(BBAM):
    """Counts the chunks (one optimisation loop each) and can pretend each box costs 1 MiB, through
    BBAM's extension points."""

    def __init__(self, model, mib_per_box: float | None = None) -> None:
        super().__init__(model, estimate_step_memory=self._estimate, optimise_masks=self._optimise_counted)
        self.mib_per_box = mib_per_box
        self.chunk_sizes: list[int] = []

    def _estimate(self, adapter, image, mu, masks, positives, crops) -> list[float]:
        if self.mib_per_box is None:
            return estimate_step_memory(adapter, image, mu, masks, positives, crops)
        return [self.mib_per_box * 2**20] * len(masks)

    def _optimise_counted(self, adapter, image, mu, masks, *args) -> tuple[list[float], list[int]]:
        self.chunk_sizes.append(len(masks))
        return optimise_masks(adapter, image, mu, masks, *args)


@pytest.mark.parametrize("patience", [None, 1])
def test_chunks_of_two_give_the_maps_of_one_batch(detector, scene, patience):
    image, boxes, labels = scene
    stop = dict(early_stop_patience=patience, early_stop_tol=0.05)
    one = _Counting(detector)
    maps, records = one.attribute(image, boxes, target=labels, max_memory_mb=None, return_records=True, **stop, **FAST)
    chunked = _Counting(detector, mib_per_box=1.0)
    chunk_maps, chunk_records = chunked.attribute(image, boxes, target=labels, max_memory_mb=2.0,
                                                  return_records=True, **stop, **FAST)
    assert one.chunk_sizes == [5] and chunked.chunk_sizes == [2, 2, 1]
    assert chunk_maps.shape == maps.shape == (5, 1, *image.shape[-2:])
    assert any(not r.fallback for r in records)  # real positives, not only the box itself
    torch.testing.assert_close(chunk_maps, maps, atol=1e-5, rtol=0)
    assert [r.steps for r in chunk_records] == [r.steps for r in records]
    assert [r.num_positives for r in chunk_records] == [r.num_positives for r in records]
    if patience is not None:
        assert min(r.steps for r in records) < FAST["steps"]  # early stop happened, box by box


def test_one_box_per_chunk_under_a_tiny_budget(detector, scene):
    image, boxes, labels = scene
    chunked = _Counting(detector)
    chunk_maps = chunked.attribute(image, boxes, target=labels, max_memory_mb=1e-3, **FAST)
    assert chunked.chunk_sizes == [1] * 5
    maps = BBAM(detector).attribute(image, boxes, target=labels, max_memory_mb=None, **FAST)
    torch.testing.assert_close(chunk_maps, maps, atol=1e-5, rtol=0)


def test_auto_budget_keeps_a_small_image_in_one_batch(detector, scene):
    image, boxes, labels = scene
    counting = _Counting(detector)
    counting.attribute(image, boxes, target=labels, **FAST)  # max_memory_mb="auto"
    assert counting.chunk_sizes == [5]
    assert bbam_module._memory_budget_mb("auto", torch.device("cpu")) > 100  # MiB: any machine that runs the tests


def test_step_estimate_grows_with_the_window(detector, scene):
    image, boxes, labels = scene
    bbam = BBAM(detector)
    masks = [torch.zeros(1, 1, 12, 12, requires_grad=True) for _ in range(2)]
    small, large = (bbam.adapter.crop(torch.tensor(w), 192, 192) for w in ([0.0, 0.0, 40.0, 40.0],
                                                                           [0.0, 0.0, 192.0, 192.0]))
    with bbam.adapter.frozen(), torch.no_grad():
        positives = select_positives(bbam.adapter, image[None].float(), boxes[:2], labels[:2],
                                     BBAMSettings(num_proposals=16, max_positives=8))
    mu = bbam.adapter.pixel_mean()
    with bbam.adapter.frozen(), torch.enable_grad():
        estimate = estimate_step_memory(bbam.adapter, image[None].float(), mu, masks, positives, [small, large])
        whole = estimate_step_memory(bbam.adapter, image[None].float(), mu, masks, positives, None)
    assert 0 < estimate[0] < estimate[1]
    assert whole == [estimate[1]] * 2  # the whole input is the largest window


def test_chunks_fill_up_to_the_budget():
    assert bbam_module._chunks([1.0, 1.0, 1.0, 1.0, 1.0], 2.0) == [[0, 1], [2, 3], [4]]
    # costliest first; a box over the budget is a chunk of its own
    assert bbam_module._chunks([1.0, 5.0, 2.0, 1.0], 3.0) == [[1], [0, 2], [3]]


@pytest.mark.parametrize("setting", [0, -1.0, "lots"])
def test_bad_budget_is_refused(detector, scene, setting):
    image, boxes, labels = scene
    with pytest.raises(ValueError, match="max_memory_mb"):
        BBAM(detector).attribute(image, boxes, target=labels, max_memory_mb=setting, **FAST)
