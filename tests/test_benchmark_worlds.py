"""The worlds benchmark's choice: leave-one-world-out never looks at the world it scores."""
from __future__ import annotations

import numpy as np

from bbam_captum import BBAMSettings
from benchmarks import worlds


def _results(table: dict[str, dict[tuple[str, str], float]]) -> dict[str, dict]:
    """Benchmark-shaped results from {world: {(variant, chain): instance mIoU}}; the box scores 0.5."""
    out = {}
    for world, scores in table.items():
        variants: dict = {}
        for (variant, chain), value in scores.items():
            variants.setdefault(variant, {"bbam": {}, "box": {}})
            variants[variant]["bbam"][chain] = {"instance_miou": value}
            variants[variant]["box"][chain] = {"instance_miou": 0.5}
        out[world] = {"variants": variants}
    return out


def test_leave_one_world_out_chooses_on_the_other_worlds_only(monkeypatch):
    monkeypatch.setattr(worlds, "MAP_VARIANTS", {"default": BBAMSettings()})
    monkeypatch.setattr(worlds, "BOX_VARIANT", "default")
    monkeypatch.setattr(worlds, "CHAINS", {"a": None, "b": None})
    # chain a wins on worlds 1 and 2, chain b only on world 3 (by a lot)
    table = {"w1": {("default", "a"): 0.9, ("default", "b"): 0.6},
             "w2": {("default", "a"): 0.8, ("default", "b"): 0.7},
             "w3": {("default", "a"): 0.1, ("default", "b"): 0.9}}
    picks = worlds.leave_one_world_out(_results(table))
    assert picks["w3"]["chain"] == "a" and picks["w3"]["instance_miou"] == 0.1  # w3's own preference is ignored
    assert picks["w3"]["chosen_on"] == ["w1", "w2"]
    # without w1, chain b has the better mean on w2 and w3 (0.8 against 0.45)
    assert picks["w1"]["chain"] == "b" and np.isclose(picks["w1"]["mean_on_others"], 0.8)
    assert picks["w1"]["box_instance_miou"] == 0.5


def test_box_maps_are_the_filled_boxes():
    maps = worlds.box_maps(np.array([[2, 3, 6, 8], [0, 0, 10, 10]], np.float32), 10, 12)
    assert maps.shape == (2, 10, 12) and maps.dtype == np.float32
    assert maps[0].sum() == 4 * 5 and maps[0, 3:8, 2:6].all()
    assert maps[1, :, :10].all() and not maps[1, :, 10:].any()
