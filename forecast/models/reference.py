"""torch-harmonics' reference SFNO (``torch_harmonics.examples.models``) as a registered model type.

It is the implementation most SFNO users start from, so the project trains, rolls out and scores it
through the same pipeline as its own SFNO (``type: sfno_reference`` in a train config) to compare the
two under the same data and budget. The network is the library's own class, unchanged; this module only
maps a typed config onto its arguments. Its truncation follows the library: ``int(min(h, w // 2) *
hard_thresholding_fraction)`` modes of the internal ``h x w`` grid, which the config derives from
``lmax`` so that both SFNOs are configured alike.
"""

from __future__ import annotations

from torch import nn

from forecast.models.config import ReferenceSFNOConfig

__all__ = ["build_reference_sfno"]


def build_reference_sfno(config: ReferenceSFNOConfig, grid_type: str, nlat: int, nlon: int, in_channels: int,
                         out_channels: int) -> nn.Module:
    """The library's SFNO for a ``nlat x nlon`` grid: ``(B, C_in, nlat, nlon) -> (B, C_out, nlat, nlon)``."""
    from torch_harmonics.examples.models.sfno import SphericalFourierNeuralOperator

    h = (nlat - 1) // config.scale_factor + 1  # the library assumes poles are included
    w = nlon // config.scale_factor
    modes = min(h, w // 2)  # the library's (w // 2 + 1) - 1
    if config.lmax is not None and config.lmax > modes:
        raise ValueError(f"lmax={config.lmax} exceeds the {modes} modes of the reference SFNO's {h} x {w} grid")
    # The library keeps int(modes * fraction) modes; aim half a mode above lmax so rounding cannot lose one.
    fraction = 1.0 if config.lmax is None else min(1.0, (config.lmax + 0.5) / modes)
    return SphericalFourierNeuralOperator(
        img_size=(nlat, nlon), grid=grid_type, grid_internal="legendre-gauss", scale_factor=config.scale_factor,
        in_chans=in_channels, out_chans=out_channels, embed_dim=config.embed_dim, num_layers=config.num_layers,
        activation_function=config.activation, use_mlp=True, mlp_ratio=config.mlp_ratio,
        drop_rate=config.drop_rate, drop_path_rate=config.drop_path_rate,
        normalization_layer=config.normalization_layer, hard_thresholding_fraction=fraction,
        residual_prediction=config.residual_prediction, pos_embed=config.pos_embed, bias=config.bias,
    )
