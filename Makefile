# The two commands of the README are `make demo` and `make test`; each sets up .venv/ first.
PY := .venv/bin/python
MIM := .venv/bin/mim
DETECTOR_CONFIG := mm_configs/detector/faster-rcnn_r18-slim_synth.py
DETECTOR_WORK_DIR := work_dirs/detector
DETECTOR_ASSET := bbam_captum/assets/detector

.PHONY: setup demo test detector detector-data

setup:
	@bash scripts/setup_env.sh

test: setup
	@echo "[test] running the test suite"
	$(PY) -m pytest -q tests

demo: setup
	@$(PY) -m bbam_captum.demo --out outputs/demo

# Reproduces the bundled detector from scratch (about an hour on 2 CPU cores).
detector-data: setup
	@test -f data/synth/train/annotations.json || .venv/bin/bbam-captum synth data/synth/train --num-images 4000 --seed 0
	@test -f data/synth/val/annotations.json || .venv/bin/bbam-captum synth data/synth/val --num-images 300 --seed 1

detector: detector-data
	$(MIM) train mmdet $(DETECTOR_CONFIG) --work-dir $(DETECTOR_WORK_DIR) --resume
	$(PY) -m bbam_captum.detectors.export --work-dir $(DETECTOR_WORK_DIR) --out $(DETECTOR_ASSET) --val-ann data/synth/val/annotations.json
