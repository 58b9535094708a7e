# Generative ensembles against initial-condition perturbations on the embedded data (issue 11).
#   make ensemble-generative
# trains the CRPS-trained stochastic SFNO (configs/train/sfno_crps_synth.yaml) and Spherical DYffusion
# (configs/train/dyffusion_synth_interp.yaml, then dyffusion_synth.yaml) with the pattern rule of
# pipelines/climate.mk, forecasts five 16-member ensembles from the same 22 initial times
# (configs/predict/generative/*.yaml: the deterministic SFNO alone, with spherical-GRF and with bred-vector
# perturbations, the CRPS SFNO and DYffusion), scores each (configs/evaluate/generative.yaml) and puts them
# side by side with `forecast ensembles` -> runs/generative/comparison/report.html.
# Included by the top-level Makefile; STAMP, FORECAST, STORE, RUN and CLIM come from there.

GEN := runs/generative
GEN_EVAL_CONFIG := configs/evaluate/generative.yaml
GEN_ENSEMBLES := deterministic ic-grf ic-bred sfno-crps dyffusion
GEN_COMPARISON := $(GEN)/comparison

.PHONY: ensemble-generative

ensemble-generative: $(GEN_COMPARISON)/report.html

# Stage 2 of DYffusion starts from stage 1's last weights.
runs/dyffusion_synth/model.pt: runs/dyffusion_synth_interp/model.pt

$(GEN)/forecasts/%.zarr/COMPLETE: $(STAMP) $(STORE)/zarr.json
	$(FORECAST) predict configs/predict/generative/$(subst -,_,$*).yaml --overwrite --no-progress \
		--set store=$(STORE) --set output.path=$(@D)

$(GEN)/forecasts/deterministic.zarr/COMPLETE $(GEN)/forecasts/ic-grf.zarr/COMPLETE \
	$(GEN)/forecasts/ic-bred.zarr/COMPLETE: $(RUN)/model.pt
$(GEN)/forecasts/sfno-crps.zarr/COMPLETE: runs/sfno_crps_synth/model.pt
$(GEN)/forecasts/dyffusion.zarr/COMPLETE: runs/dyffusion_synth/model.pt

$(GEN)/evaluation/%/scores.nc: $(GEN)/forecasts/%.zarr/COMPLETE $(CLIM)/zarr.json $(GEN_EVAL_CONFIG)
	$(FORECAST) evaluate $(GEN)/forecasts/$*.zarr --truth $(STORE) --climatology $(CLIM) --config $(GEN_EVAL_CONFIG) \
		--out $(@D) --no-progress

$(GEN_COMPARISON)/report.html: $(GEN_ENSEMBLES:%=$(GEN)/evaluation/%/scores.nc)
	$(FORECAST) ensembles $(GEN_ENSEMBLES:%=$(GEN)/evaluation/%) --out $(@D) --truth $(STORE) \
		--generative sfno-crps dyffusion --perturbed ic-grf ic-bred
