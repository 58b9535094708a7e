# forecast: every stage of the pipeline as a make target. `make help` lists them.
# Targets depend on their files, so `make all` after a change reruns only what is stale.
# The dataset chains live in pipelines/*.mk (embedded default data, real ERA5).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
FORECAST := $(BIN)/forecast
DATA ?= data
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` / `make test-all` (auto: one per core; 0 runs in this process).
TEST_WORKERS ?= auto

.PHONY: help install test test-all lint all bench gpu-check clean
.DEFAULT_GOAL := help
# Keep every intermediate file (trained runs, stores): they are results, not temporaries.
.SECONDARY:

include pipelines/synthetic.mk
include pipelines/era5.mk
include pipelines/climate.mk
include pipelines/generative.mk

help:
	@echo "make install      create $(VENV) and install the package with its dev tools"
	@echo "make test         run the fast test suite (installs first if needed)"
	@echo "make test-all     run every test, the slow ones too"
	@echo "make lint         ruff over the package, tests and benchmarks"
	@echo "make data         write the embedded ERA5-style archive to $(SYNTH_DIR)"
	@echo "make ingest       build the training store $(STORE) (CONFIG=$(CONFIG))"
	@echo "make train        train TRAIN_CONFIG=$(TRAIN_CONFIG) on the store -> $(RUN)/model.pt"
	@echo "make skill        RMSE/ACC of that model vs persistence and climatology -> $(RUN)/skill.csv"
	@echo "make predict      10-day forecasts of that model -> $(RUN)/forecasts/deterministic.zarr"
	@echo "make ensemble     8-member 5-day ensembles of that model from 20 days -> $(RUN)/forecasts/ensemble.zarr"
	@echo "make climatology  day-of-year x hour climatology of the training year -> $(CLIM)"
	@echo "make evaluate     WeatherBench2 scores of both products vs persistence/climatology -> $(EVALUATION)/*/scores.nc"
	@echo "make render       maps, score plots, scorecards and a rollout GIF -> $(EVALUATION)/*/figures/"
	@echo "make report       one HTML/Markdown page per product -> $(EVALUATION)/*/report.html"
	@echo "make compare      scorecards of the SFNO against the AFNO on the same cases -> $(EVALUATION)/compare-afno_synth/"
	@echo "make ensemble-generative  CRPS-trained SFNO and DYffusion vs IC perturbations, 16 members -> runs/generative/comparison/"
	@echo "make era5         build $(ERA5_STORE) from real ERA5 files in ERA5=$(ERA5)"
	@echo "make era5-skill   train SFNO and AFNO on real ERA5 and score them (runs/era5-skill/*.csv)"
	@echo "make climate-truth two ten-year reference runs of the embedded atmosphere (truth + noise floor)"
	@echo "make climate      ten-year rollouts of SFNO, AFNO and torch-harmonics' SFNO, climate scores -> runs/climate/summary.csv"
	@echo "make all          the whole pipeline on the embedded default data (skill, predict, ensemble, report)"
	@echo "make bench        ingestion, ensemble/rollout and evaluation throughput and peak-memory benchmarks"
	@echo "make gpu-check    train and roll out on the CUDA GPU vs the CPU (tolerances, throughput); says so without one"
	@echo "make clean        remove generated data and runs (DATA=$(DATA), runs/)"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

test: $(STAMP)
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check forecast tests benchmarks

all: skill predict ensemble report

bench: $(STAMP) $(RUN)/model.pt
	$(BIN)/python benchmarks/ingest_throughput.py --era5 $(ERA5)
	$(BIN)/python benchmarks/evaluate_throughput.py --store $(STORE)
	$(BIN)/python benchmarks/ensemble_throughput.py --package $(RUN)/best.pt --store $(STORE)
	$(BIN)/python benchmarks/models_vs_reference.py
	$(BIN)/python benchmarks/rollout_overhead.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/contention.py

gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(DATA) runs
