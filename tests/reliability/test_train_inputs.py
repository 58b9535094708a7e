"""Training and model packages: configs and checkpoints that used to train or load silently wrong (issue 10)."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_support import one_line_error

from forecast.cli import main
from forecast.data.features import FORCING_NAMES, POSITION_NAMES
from forecast.data.store import open_training_store
from forecast.errors import InputError
from forecast.grids import Grid
from forecast.models import SFNOConfig, build_model
from forecast.models.config import PersistenceConfig
from forecast.train.config import TrainConfig
from forecast.train.loop import train
from forecast.train.package import load_package, save_package


def train_config(store: Path, run_dir: Path, **over) -> TrainConfig:
    tree = {"name": "tiny", "device": "cpu", "epochs": 1, "steps_per_epoch": 1, "output_dir": str(run_dir),
            "data": {"store": str(store), "train": {"start": "2000-01-01", "end": "2000-01-31T18:00"},
                     "valid": {"start": "2000-02-01", "end": "2000-02-10T18:00"}, "batch_size": 2, "workers": 0},
            "model": {"type": "sfno", "embed_dim": 4, "num_layers": 1, "lmax": 6, "mmax": 6},
            "validation": {"lead_steps": [1], "max_cases": 2}}
    return TrainConfig.model_validate({**tree, **over})


def nothing_trained(run_dir: Path) -> bool:
    return not any((run_dir / name).exists() for name in ("last.pt", "best.pt", "model.pt", "metrics.jsonl"))


def test_channel_weight_for_an_unknown_channel_is_an_error(truth_store, tmp_path):
    cfg = train_config(truth_store, tmp_path / "run", loss={"channel_weights": {"z500": 2.0, "t850": 1.0}})
    with pytest.raises(InputError, match=r"loss.channel_weights names \['t850'\], not channels of the store "
                                         r"\['z500', 'msl'\]"):
        train(cfg, progress=False)
    assert nothing_trained(tmp_path / "run")


def package_like(store: Path, path: Path, model: str, std_scale: float = 1.0, grid: str | None = None) -> Path:
    """A package of an untrained ``model`` ("sfno": the network :func:`train_config` builds, "persistence":
    another one) on ``store``'s channels, its normalisation std scaled by ``std_scale`` and, with ``grid``,
    on that grid type of the same size (weights of the same shapes, for other latitudes)."""
    s = open_training_store(store)
    s = dataclasses.replace(s, std=s.std * std_scale)
    if grid is not None:
        g = Grid(grid, *s.shape)
        s = dataclasses.replace(s, grid_type=grid, latitudes=g.latitudes, longitudes=g.longitudes)
    n_in = len(s.channels) + len(s.static_names) + len(POSITION_NAMES) + len(FORCING_NAMES)
    config = (SFNOConfig(embed_dim=4, num_layers=1, lmax=6, mmax=6) if model == "sfno"
              else PersistenceConfig(prognostic_indices=[0, 1]))
    net = build_model(config, s.grid_type, *s.shape, n_in, len(s.channels))
    return save_package(path, net, config, True, s, f"name: {model}\n")


@pytest.mark.parametrize("case", ["grid", "normalisation", "network"])
def test_init_from_checks_grid_statistics_and_network(truth_store, tmp_path, case):
    if case == "grid":  # an SFNO whose weights fit, trained on Legendre-Gauss latitudes of the same count
        package = package_like(truth_store, tmp_path / "lg.pt", "sfno", grid="legendre-gauss")
        expected = r"was trained on a legendre-gauss 19 x 36 grid, the store is equiangular 19 x 36"
    elif case == "normalisation":  # the same network, inputs scaled by another store's statistics
        package = package_like(truth_store, tmp_path / "stats.pt", "sfno", std_scale=1.5)
        expected = r"was trained with another normalisation: std of z500 is [\d.e+]+ there, [\d.e+]+ in the store"
    else:  # the right grid and statistics, but a persistence network where the config asks for an SFNO
        package = package_like(truth_store, tmp_path / "net.pt", "persistence")
        expected = r"holds another network: \d+ weight\(s\) differ in name or shape"
    with pytest.raises(InputError, match=expected):
        train(train_config(truth_store, tmp_path / "run", init_from=str(package)), progress=False)
    assert nothing_trained(tmp_path / "run")


def damaged_copies(package: Path, folder: Path) -> dict[str, Path]:
    """The package truncated, with one bit flipped inside its weights, and with a pickled object in its payload."""
    data = package.read_bytes()
    out = {"truncated": folder / "truncated.pt", "bitflip": folder / "bitflip.pt", "pickle": folder / "pickle.pt"}
    out["truncated"].write_bytes(data[: len(data) * 2 // 3])
    with zipfile.ZipFile(package) as zf:  # flip a bit in the middle of the largest tensor's bytes
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    flipped = bytearray(data)
    flipped[start + info.file_size // 2] ^= 0x04
    out["bitflip"].write_bytes(bytes(flipped))
    raw = torch.load(package, weights_only=True)
    raw["info"] = Marker(str(folder / "pwned"))  # code a pickle would run on loading
    torch.save(raw, out["pickle"])
    return out


class Marker:
    """Unpickling this creates a file: proof that code from a checkpoint ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize(("kind", "message"), [
    ("truncated", r"is truncated or not a torch checkpoint"),
    ("bitflip", r"is damaged: its part '.*/data/\d+' fails the CRC check"),
    ("pickle", r"cannot be read \(UnpicklingError: Weights only load failed"),
])
def test_damaged_or_unsafe_package_is_refused(linear, tmp_path, kind, message):
    path = damaged_copies(linear, tmp_path)[kind]
    with pytest.raises(InputError, match=message):
        load_package(path)
    assert not (tmp_path / "pwned").exists()  # weights_only=True never ran the payload
    if kind == "pickle":  # the same file through the unsafe reader does run it: the test can tell
        torch.load(path, weights_only=False)
        assert (tmp_path / "pwned").exists()


def test_cli_predict_with_a_damaged_package_is_one_line(linear, truth_store, tmp_path, capsys):
    path = damaged_copies(linear, tmp_path)["bitflip"]
    out = tmp_path / "p.zarr"
    code = main(["predict", str(path), "--store", str(truth_store), "--init", "2000-01-10T00:00", "--lead", "1d",
                 "--out", str(out), "--no-progress"])
    assert code == 1 and "fails the CRC check" in one_line_error(capsys.readouterr().err, "predict")
    assert not out.exists() and not list(tmp_path.glob(".p.zarr.*"))


def test_package_loads_unchanged_after_the_integrity_check(linear):
    pkg = load_package(linear)  # a sound package still loads, weights intact
    raw = torch.load(linear, weights_only=True)
    for k, v in pkg.state_dict.items():
        torch.testing.assert_close(v, raw["state_dict"][k], rtol=0, atol=0)
    assert np.isfinite(pkg.std).all()
