"""Synthetic ERA5-like archive from a forced-dissipative shallow-water model (``forecast synth``).

Layers: :mod:`.spectral` (torch-harmonics transforms) <- :mod:`.model` (pure nn.Module, the reference
step) <- :mod:`.fused` (the same step in a few matrix products, ~4x faster, used by default) <-
:mod:`.forcing` (calendar, equilibrium heights, orography, stirring) <- :mod:`.simulate` (the run,
ERA5 variables) <- :mod:`.archive` (CDS-layout netCDF files). :mod:`.config` holds the settings.
"""

from forecast.synth.archive import write_archive
from forecast.synth.config import ForcingConfig, ModelConfig, OutputConfig, SynthConfig
from forecast.synth.model import ShallowWaterModel
from forecast.synth.simulate import SynthSimulation

__all__ = [
    "ForcingConfig",
    "ModelConfig",
    "OutputConfig",
    "ShallowWaterModel",
    "SynthConfig",
    "SynthSimulation",
    "write_archive",
]
