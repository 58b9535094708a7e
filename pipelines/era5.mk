# The pipeline on real ERA5 (CDS netCDF, 2.5 deg, 6-hourly): ../shared/era5 or your own download.
#   make era5                       ingest with configs/ingest/era5.yaml
#   make era5 ERA5=/data/my-cds     the same chain on your files (same file-name patterns)
# Included by the top-level Makefile; variables STAMP, FORECAST and DATA come from there.

ERA5 ?= ../shared/era5
ERA5_CONFIG ?= configs/ingest/era5.yaml
ERA5_STORE := $(DATA)/stores/era5-2.5deg.zarr
ERA5_SOURCES := $(wildcard $(ERA5)/era5_msl_*.nc $(ERA5)/era5_vo850_*.nc)
ERA5_CONSTANTS := $(ERA5)/samples/constants_5.625deg.nc

.PHONY: era5 era5-ingest

era5: era5-ingest
era5-ingest: $(ERA5_STORE)/zarr.json

$(ERA5_STORE)/zarr.json: $(STAMP) $(ERA5_CONFIG) $(ERA5_SOURCES)
	$(FORECAST) ingest $(ERA5_CONFIG) --output $(ERA5_STORE) \
		--set 'sources.0.paths=[$(ERA5)/era5_msl_*.nc, $(ERA5)/era5_vo850_*.nc]' \
		--set 'static.0.source.paths=[$(ERA5_CONSTANTS)]' --set 'static.1.source.paths=[$(ERA5_CONSTANTS)]'

# Issue-15 protocol on real ERA5, the same for every model and baseline: train 2025-12-01 .. 01-17,
# validation 2026-01-18 .. 01-27 (checkpoint selection and every tuning decision), test 01-28 .. 02-07
# (scored once here, never used for a decision). SFNO and AFNO are trained on the 1-step loss then
# fine-tuned on a 4-step loss; SFNO gets a third stage on an 8-step (2-day) loss. `make era5-skill`
# scores each chosen model, persistence and both climatologies on the test period (runs/era5-skill/
# <model>.csv) and, for the record of what was chosen, on the validation period (<model>-valid.csv).
ERA5_RUNS := runs
ERA5_SKILL := $(ERA5_RUNS)/era5-skill
ERA5_CLIM := --clim-start 2025-12-01T00:00 --clim-end 2026-01-17T18:00 --leads 1 4 8 12 20
ERA5_VALID := --start 2026-01-18T00:00 --end 2026-01-27T18:00 --cases 40 $(ERA5_CLIM)
ERA5_TEST := --start 2026-01-28T00:00 --end 2026-02-07T18:00 --cases 44 $(ERA5_CLIM)
ERA5_TRAIN = $(FORECAST) train $< --resume --set data.store=$(ERA5_STORE) --set output_dir=$(ERA5_RUNS)/{name}

.PHONY: era5-train era5-skill

era5-train: $(ERA5_RUNS)/sfno-era5-ft8/model.pt $(ERA5_RUNS)/afno-era5-ft/model.pt

# Every ERA5 recipe inherits (`base:`) from sfno_era5.yaml, so each stage depends on it too.
$(ERA5_RUNS)/%-era5/model.pt: configs/train/%_era5.yaml configs/train/sfno_era5.yaml $(ERA5_STORE)/zarr.json
	$(ERA5_TRAIN)

$(ERA5_RUNS)/%-era5-ft/model.pt: configs/train/%_era5_ft.yaml $(ERA5_RUNS)/%-era5/model.pt
	$(ERA5_TRAIN) --set init_from=$(ERA5_RUNS)/$*-era5/best.pt

$(ERA5_RUNS)/%-era5-ft8/model.pt: configs/train/%_era5_ft8.yaml $(ERA5_RUNS)/%-era5-ft/model.pt
	$(ERA5_TRAIN) --set init_from=$(ERA5_RUNS)/$*-era5-ft/best.pt

era5-skill: $(foreach m,sfno afno,$(ERA5_SKILL)/$(m).csv $(ERA5_SKILL)/$(m)-valid.csv)

$(ERA5_SKILL)/sfno.csv $(ERA5_SKILL)/sfno-valid.csv: $(ERA5_RUNS)/sfno-era5-ft8/model.pt
$(ERA5_SKILL)/afno.csv $(ERA5_SKILL)/afno-valid.csv: $(ERA5_RUNS)/afno-era5-ft/model.pt
$(ERA5_SKILL)/%-valid.csv:
	mkdir -p $(ERA5_SKILL)
	$(FORECAST) skill $(<D)/best.pt --store $(ERA5_STORE) $(ERA5_VALID) --out $@
$(ERA5_SKILL)/%.csv:
	mkdir -p $(ERA5_SKILL)
	$(FORECAST) skill $(<D)/best.pt --store $(ERA5_STORE) $(ERA5_TEST) --out $@
