# Reference climate for climate evaluation (issue 9): two ten-year truth runs after the training years.
#   make climate-truth   forecast synth + forecast ingest, twice:
#     configs/synth/climate-truth.yaml   -> $(DATA)/raw/climate-truth   -> $(DATA)/stores/climate-truth.zarr
#       the training archive's simulation (default.yaml: seed 0) continued: it runs from 2000 again and
#       writes 2002-01-01 .. 2011-12-31T18 only, so it continues data/raw/era5-synth bit for bit when
#       both come from the same code (an era5-synth written before the fused step, commit e33894a, has
#       the same climate but another trajectory; `make -B data` rewrites it);
#     configs/synth/climate-truth-b.yaml -> $(DATA)/raw/climate-truth-b -> $(DATA)/stores/climate-truth-b.zarr
#       the same with seed 1: an independent run of the same length, calendar and forcing, whose
#       distance to the first is the noise floor of every climate metric.
#   Stores: the training store's grid and channels (configs/ingest/climate-truth.yaml, based on
#   synthetic.yaml), the same valid times, no normalisation statistics. Each file is made once; a second
#   `make climate-truth` does nothing. Use them as `truth:` and `reference:` of configs/evaluate/climate.yaml.
#   Measured (`make climate-truth`, 2026-12-01, 2 cores of an Intel Xeon shared with other jobs, load
#   average 5-7, i.e. about half a core each): 22.4 min in all.
#     synth climate-truth    7.7 min (4,443 simulated days: 60 spin-up + 2 years unwritten + 10 written),
#                            1.29 GB (241 files)
#     ingest climate-truth   1.6 min, 0.53 GB
#     synth climate-truth-b 10.4 min, 1.30 GB
#     ingest climate-truth-b 2.7 min, 0.53 GB
#   The generator alone, against the reference step: benchmarks/synth_throughput.py.
# Included by the top-level Makefile; STAMP, FORECAST and DATA come from there.

CLIMATE_RUNS := climate-truth climate-truth-b
CLIMATE_INGEST ?= configs/ingest/climate-truth.yaml
CLIMATE_STORES := $(CLIMATE_RUNS:%=$(DATA)/stores/%.zarr/zarr.json)

.PHONY: climate-truth

climate-truth: $(CLIMATE_STORES)

# climate-truth-b.yaml is based on climate-truth.yaml, which is based on default.yaml.
$(DATA)/raw/climate-%/MANIFEST.json: configs/synth/climate-%.yaml configs/synth/climate-truth.yaml \
		configs/synth/default.yaml $(STAMP)
	$(FORECAST) synth --config $< --out $(@D) --no-progress

$(DATA)/stores/climate-%.zarr/zarr.json: $(DATA)/raw/climate-%/MANIFEST.json $(CLIMATE_INGEST) \
		configs/ingest/synthetic.yaml $(STAMP)
	$(FORECAST) ingest $(CLIMATE_INGEST) --output $(@D) --no-progress --set name=climate-$* \
		--set 'sources.0.paths=[$(<D)/pressure_levels/*.nc, $(<D)/single_levels/*.nc]' \
		--set 'static.0.source.paths=[$(<D)/invariant/*.nc]' \
		--set 'static.1.source.paths=[$(<D)/invariant/*.nc]'

# Climate mode end to end: `make climate` = truth runs -> a ten-year rollout of each embedded-data model
# (configs/predict/climate.yaml, daily snapshots) -> `forecast climate` against climate-truth with
# climate-truth-b as the noise floor (tables, figures, report) -> one table of every model side by side.
#   CLIMATE_MODELS: train configs (configs/train/<name>.yaml), all with sfno_synth.yaml's data and budget.
# A rollout that a guard stops (exit status 3) is still scored: its product is kept, flagged incomplete,
# and `allow_incomplete` scores the years it reached, which the verdict then fails.
CLIMATE_MODELS ?= sfno_synth afno_synth sfno_reference_synth
CLIMATE_PREDICT ?= configs/predict/climate.yaml
CLIMATE_EVAL ?= configs/evaluate/climate.yaml
CLIMATE_TRUTH := $(DATA)/stores/climate-truth.zarr
CLIMATE_REFERENCE := $(DATA)/stores/climate-truth-b.zarr
CLIMATE_TABLE := runs/climate/summary.csv

.PHONY: climate

climate: $(CLIMATE_TABLE)

# Any train config's run: runs/<name>/model.pt (the default model's own rule is in synthetic.mk).
runs/%/model.pt: configs/train/%.yaml configs/train/sfno_synth.yaml $(STAMP) $(STORE)/zarr.json
	$(FORECAST) train $< --resume --set data.store=$(STORE) --set output_dir=runs/$*

runs/%/climate/rollout.done: runs/%/model.pt $(CLIMATE_PREDICT) configs/predict/deterministic.yaml \
		$(CLIMATE_TRUTH)/zarr.json
	$(FORECAST) predict $(CLIMATE_PREDICT) --overwrite --no-progress --set 'packages=[runs/$*/best.pt]' \
		--set store=$(CLIMATE_TRUTH) --set name=$*-climate --set output.path=runs/$*/climate/rollout.zarr; \
		status=$$?; test $$status -eq 0 -o $$status -eq 3 && echo "exit $$status" > $@

runs/%/climate/evaluation/climate.csv: runs/%/climate/rollout.done $(CLIMATE_EVAL) $(CLIMATE_REFERENCE)/zarr.json
	$(FORECAST) climate runs/$*/climate/rollout.zarr --truth $(CLIMATE_TRUTH) --reference $(CLIMATE_REFERENCE) \
		--config $(CLIMATE_EVAL) --set allow_incomplete=true --label $* --out $(@D) --no-progress

$(CLIMATE_TABLE): $(CLIMATE_MODELS:%=runs/%/climate/evaluation/climate.csv)
	$(FORECAST) climate-table $^ --out $@
