"""Every config shipped in configs/ loads into its typed config class, strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecast.config import ConfigError, apply_overrides, dump_config, load_config
from forecast.ingest.config import IngestConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def config_class(folder: str, name: str = ""):
    if folder == "ingest":
        return IngestConfig
    if folder == "train":
        from forecast.train.config import TrainConfig

        return TrainConfig
    if folder == "models":
        from forecast.models import ModelConfigFile

        return ModelConfigFile
    if folder == "synth":
        from forecast.synth.archive import SynthConfig

        return SynthConfig
    if folder == "predict":
        from forecast.rollout.config import PredictConfig

        return PredictConfig
    if folder == "evaluate":
        from forecast.evaluate.config import ClimateConfig, EvaluateConfig

        return ClimateConfig if name.startswith("climate") else EvaluateConfig
    raise AssertionError(f"no config class known for configs/{folder}/; add it here")


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_config_loads_and_round_trips(path, tmp_path):
    cls = config_class(path.relative_to(CONFIGS).parts[0], path.stem)
    cfg = load_config(cls, path)
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(cfg))
    assert load_config(cls, again) == cfg


def test_unknown_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "ingest/synthetic.yaml").read_text() + "\ngrid_typo: 3\n")
    with pytest.raises(ConfigError, match="grid_typo"):
        load_config(IngestConfig, bad)


def test_overrides_reach_nested_and_listed_values():
    cfg = load_config(IngestConfig, CONFIGS / "ingest/synthetic.yaml",
                      ["grid.nlat=48", "grid.nlon=96", "sources.0.paths=[a.nc, b.nc]", "stats=null"])
    assert (cfg.grid.nlat, cfg.grid.nlon) == (48, 96)
    assert cfg.sources[0].paths == ["a.nc", "b.nc"] and cfg.stats is None
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_overrides({}, ["grid.nlat"])


def test_invalid_value_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"grid\.type"):
        load_config(IngestConfig, CONFIGS / "ingest/synthetic.yaml", ["grid.type=healpix"])
    with pytest.raises(ConfigError, match="time step '6 parsecs'"):
        load_config(IngestConfig, CONFIGS / "ingest/synthetic.yaml", ["time.step=6 parsecs"])


def test_base_config_is_laid_under(tmp_path):
    """``base:`` loads another file first (relative to this one, chains allowed): mappings merge key by
    key, other values (lists too) are replaced; a cycle or a non-path base is an error."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("x: 1\nnested: {p: 1, q: [1, 2]}\nkeep: k\n")
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\nnested: {q: [3]}\nx: 2\n")
    (tmp_path / "c.yaml").write_text("base: sub/b.yaml\nnested: {r: null}\n")
    from forecast.config import load_tree

    assert load_tree(tmp_path / "c.yaml") == {"x": 2, "nested": {"p": 1, "q": [3], "r": None}, "keep": "k"}
    # a mapping of another type replaces the base's mapping whole (its keys belong to the other type)
    (tmp_path / "m.yaml").write_text("model: {type: sfno, lmax: 16}\nopt: {type: adam, lr: 1}\n")
    (tmp_path / "n.yaml").write_text("base: m.yaml\nmodel: {type: afno, depth: 2}\nopt: {lr: 2}\n")
    assert load_tree(tmp_path / "n.yaml") == {"model": {"type": "afno", "depth": 2}, "opt": {"type": "adam", "lr": 2}}
    # a base mapping that does not name its type (its default) is merged: its keys are not silently dropped
    (tmp_path / "l.yaml").write_text("loss: {input_noise: 0.2, rollout_steps: 1}\n")
    (tmp_path / "k.yaml").write_text("base: l.yaml\nloss: {type: crps}\n")
    assert load_tree(tmp_path / "k.yaml") == {"loss": {"input_noise": 0.2, "rollout_steps": 1, "type": "crps"}}
    (tmp_path / "loop.yaml").write_text("base: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="its own base"):
        load_tree(tmp_path / "loop.yaml")
    (tmp_path / "bad.yaml").write_text("base: [a.yaml]\n")
    with pytest.raises(ConfigError, match="must be a path"):
        load_tree(tmp_path / "bad.yaml")
    (tmp_path / "missing.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_tree(tmp_path / "missing.yaml")
    # through load_config, overrides apply after the merge
    (tmp_path / "ingest.yaml").write_text(f"base: {CONFIGS / 'ingest/synthetic.yaml'}\nname: other\n")
    cfg = load_config(IngestConfig, tmp_path / "ingest.yaml", ["grid.nlat=16"])
    base = load_config(IngestConfig, CONFIGS / "ingest/synthetic.yaml")
    assert cfg.name == "other" and cfg.grid.nlat == 16 and cfg.channels == base.channels
