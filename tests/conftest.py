"""Shared fixtures: small synthetic datasets and detectors, built once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _files import two_image_dataset

REPO = Path(__file__).resolve().parent.parent
DETECTOR_CONFIG = REPO / "mm_configs" / "detector" / "faster-rcnn_r18-slim_synth.py"

# One thread: the tests' images are small, and threads that outnumber the free cores (another job
# running beside the suite) make torch many times slower: a BBAM call of test_bbam_mechanics took
# 13.4 s with 2 threads and 0.38 s with 1 beside a one-core job on 2 cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """Six 96 px images of the synthetic world (seed 12345, never used in training)."""
    from bbam_captum.synth import WorldConfig, write_dataset

    out = tmp_path_factory.mktemp("tiny_synth")
    write_dataset(out, num_images=6, seed=12345, config=WorldConfig(image_size=96, max_object_size=80),
                  show_progress=False)
    return out


@pytest.fixture(scope="session")
def random_detector():
    """The bundled detector's architecture with random weights (fast, for mechanics tests)."""
    from bbam_captum import load_detector

    torch.manual_seed(0)
    return load_detector(DETECTOR_CONFIG, None)


@pytest.fixture
def small(tiny_synth, tmp_path) -> tuple[Path, dict]:
    """Two images of the tiny set and their boxes in ``data/`` (``data/images``, ``data/ann.json``)."""
    data = tmp_path / "data"
    return data, two_image_dataset(tiny_synth, data)
