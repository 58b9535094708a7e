"""Notebooks: every ``notebooks/*.ipynb`` runs top to bottom on small settings, and is kept without outputs.

The notebook under test runs in a kernel of *this* interpreter (a kernelspec installed into a temporary
folder at test time), so it sees the same installed ``forecast`` as the tests, whatever kernels the
machine has. Small settings replace the values of the cell tagged ``parameters``; a notebook that starts
from files ``make`` builds (a model package, a store) gets tiny ones made here (``INPUTS``), and what it
wrote is checked afterwards (``CHECKS``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient

from forecast.products import open_product
from forecast.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL = "forecast-test"
CELL_TIMEOUT_S = 170  # one cell; the whole quick start takes well under a minute with SMALL
SMALL = {  # names a parameters cell may set -> values that keep a run short (WORKDIR is added per test)
    "MONTHS": 2,
    "SPIN_UP_DAYS": 5,
    "EPOCHS": 1,
    "STEPS_PER_EPOCH": 4,
    "BATCH_SIZE": 2,
    "EMBED_DIM": 8,
    "NUM_LAYERS": 1,
    "LEAD_STEPS": [1, 4],
    "SKILL_CASES": 4,
    "PROGRESS": False,
}
ENSEMBLE_MEMBERS = 4  # ensemble_rollout.ipynb: members, initial times and lead of its small settings
ENSEMBLE_INITS = ["2000-02-01T00:00", "2000-02-03T00:00"]
ENSEMBLE_LEAD = "1d"


def ensemble_inputs(root: Path) -> dict:
    """A tiny store (``z500``, ``msl`` and ``lsm`` on a 19 x 36 grid, January statistics) and a tiny SFNO
    trained on it for a few steps: the model package and store ``ensemble_rollout.ipynb`` starts from."""
    from forecast.testing import evaluation_store
    from forecast.train.loop import train

    store = evaluation_store(root / "inputs")
    config = TrainConfig.model_validate({
        "name": "tiny-sfno",
        "data": {"store": str(store), "train": {"start": "2000-01-01", "end": "2000-01-31T18:00"},
                 "valid": {"start": "2000-02-01", "end": "2000-02-29T18:00"}, "batch_size": 4, "workers": 0},
        "model": {"type": "sfno", "embed_dim": 8, "num_layers": 1, "lmax": 8, "mmax": 8},
        "optim": {"lr": 3e-3, "warmup_steps": 1},
        "validation": {"lead_steps": [1], "max_cases": 2},
        "epochs": 1,
        "steps_per_epoch": 4,
        "output_dir": str(root / "inputs" / "run"),
        "device": "cpu",
    })
    run = train(config, progress=False)
    return {"PACKAGE": str(Path(run.run_dir) / "best.pt"), "STORE": str(store), "CLIMATOLOGY": None,
            "INIT_TIMES": ENSEMBLE_INITS, "LEAD": ENSEMBLE_LEAD, "MEMBERS": ENSEMBLE_MEMBERS,
            "GENERATIVE": generative_inputs(config, root / "inputs")}


def generative_inputs(base: TrainConfig, root: Path) -> dict[str, str]:
    """Tiny generative models on the same store, a few steps each: a CRPS-trained stochastic SFNO and both
    stages of a DYffusion model (section 8 of ensemble_rollout.ipynb)."""
    from forecast.train.loop import train

    sfno = {"embed_dim": 8, "num_layers": 1, "lmax": 8, "mmax": 8}
    validation = {"lead_steps": [1], "max_cases": 2, "members": 2}

    def run(name: str, model: dict, loss: dict, **extra) -> str:
        tree = {**base.model_dump(mode="json"), "name": name, "model": model, "loss": loss,
                "validation": validation, "output_dir": str(root / name), **extra}
        return str(Path(train(TrainConfig.model_validate(tree), progress=False).run_dir) / "model.pt")

    crps = run("tiny-crps", {"type": "sfno_stochastic", **sfno, "noise_channels": 2},
               {"type": "crps", "ensemble_members": 2})
    dyffusion = {"type": "dyffusion", "horizon": 2, "interpolator": {**sfno, "dropout": 0.2}, "forecaster": sfno}
    stage1 = run("tiny-dyf-interp", dyffusion, {"type": "dyffusion_interpolator", "rollout_steps": 2})
    stage2 = run("tiny-dyf", dyffusion, {"type": "dyffusion_forecaster", "rollout_steps": 2}, init_from=stage1)
    return {"sfno-crps": crps, "dyffusion": stage2}


def check_ensemble(workdir: Path) -> None:
    """The products hold the requested members, initial times and leads; scores and figures were written."""
    for name in ("sfno-crps", "dyffusion"):  # members drawn by the model from the same initial state
        end = open_product(workdir / "products" / f"{name}.zarr")["z500"].isel(lead_time=-1).values
        assert end.shape[1] == ENSEMBLE_MEMBERS and (end[:, 0] != end[:, 1]).any(), name
    for name in ("spherical-grf", "white-noise", "bred-vectors"):
        product = open_product(workdir / "products" / f"{name}.zarr")
        assert product.sizes["member"] == ENSEMBLE_MEMBERS
        assert product.sizes["init_time"] == len(ENSEMBLE_INITS)
        assert product.sizes["lead_time"] == 5  # lead 0 and four 6-hour steps
        assert json.loads(product.attrs["perturbation"])["type"] == name.replace("-", "_")
        start = product["z500"].isel(lead_time=0).values  # (init, member, lat, lon)
        assert (start[:, 0] != start[:, 1]).any(), f"{name}: member 1 starts where the control does"
    spread = product["z500"].isel(lead_time=-1).std("member").values
    assert np.isfinite(spread).all() and (spread > 0).any()
    scores = (workdir / "evaluation" / "spherical-grf" / "scores.csv").read_text()
    assert "crps" in scores and "spread_skill" in scores
    figures = {p.stem for p in (workdir / "figures").glob("*.png")}
    for stem in ("crps_vs_lead", "spread_skill", "point_spaghetti_plume", "perturbations_z500"):
        assert stem in figures, f"figure {stem}.png was not saved (saved: {sorted(figures)})"


INPUTS = {"ensemble_rollout.ipynb": ensemble_inputs}  # notebook -> maker of its inputs (extra parameters)
CHECKS = {"ensemble_rollout.ipynb": check_ensemble}  # notebook -> check of what it wrote under WORKDIR


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged `parameters`"
    return cells[0]


def with_small_settings(nb: nbformat.NotebookNode, workdir: Path, inputs: dict | None = None) -> nbformat.NotebookNode:
    """The notebook with the small value of every parameter its parameters cell sets (``inputs`` first)."""
    cell = parameters_cell(nb)
    assigned = {line.split("=", 1)[0].strip() for line in cell.source.splitlines() if "=" in line}
    assert "WORKDIR" in assigned, "the parameters cell must set WORKDIR (where the notebook writes)"
    missing = sorted(set(inputs or {}) - assigned)
    assert not missing, f"the parameters cell does not set {missing}"
    small = {k: v for k, v in {**SMALL, **(inputs or {}), "WORKDIR": str(workdir)}.items() if k in assigned}
    cell.source += "\n\n# small settings injected by tests/test_notebooks.py\n"
    cell.source += "\n".join(f"{name} = {value!r}" for name, value in small.items())
    return nb


@pytest.fixture
def kernel_env(tmp_path, monkeypatch) -> str:
    """A kernelspec for this interpreter, found first through JUPYTER_PATH; returns its name."""
    prefix = tmp_path / "jupyter-prefix"
    install_kernelspec(kernel_name=KERNEL, display_name="forecast (tests)", prefix=str(prefix))
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return KERNEL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, kernel_env: str):
    inputs = INPUTS[path.name](tmp_path) if path.name in INPUTS else {}
    nb = with_small_settings(nbformat.read(path, as_version=4), tmp_path / "work", inputs)
    client = NotebookClient(nb, kernel_name=kernel_env, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell's traceback, if any cell fails
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook drew no figure"
    print(f"{path.name}: {seconds:.1f} s with {sys.executable}")
    if path.name in CHECKS:
        CHECKS[path.name](tmp_path / "work")
    # Idempotent: a second run in the same work folder reuses what the first wrote (archive, store, training
    # run, forecast products).
    rerun = with_small_settings(nbformat.read(path, as_version=4), tmp_path / "work", inputs)
    NotebookClient(rerun, kernel_name=kernel_env, timeout=CELL_TIMEOUT_S,
                   resources={"metadata": {"path": str(path.parent)}}).execute()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    dirty = [i for i, c in code if c.outputs or c.execution_count is not None]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; clear them before committing"
    parameters_cell(nb)


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {REPO / 'notebooks'}"
