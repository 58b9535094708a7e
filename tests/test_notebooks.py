"""Notebooks: every ``notebooks/*.ipynb`` runs top to bottom on small settings, and is kept without outputs.

The notebook under test runs in a kernel of *this* interpreter (a kernelspec installed into a temporary
folder at test time), so it sees the same installed ``forecast`` as the tests, whatever kernels the
machine has. Small settings replace the values of the cell tagged ``parameters``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient

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


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged `parameters`"
    return cells[0]


def with_small_settings(nb: nbformat.NotebookNode, workdir: Path) -> nbformat.NotebookNode:
    """The notebook with the small value of every parameter its parameters cell sets."""
    cell = parameters_cell(nb)
    assigned = {line.split("=", 1)[0].strip() for line in cell.source.splitlines() if "=" in line}
    assert "WORKDIR" in assigned, "the parameters cell must set WORKDIR (where the notebook writes)"
    small = {k: v for k, v in {**SMALL, "WORKDIR": str(workdir)}.items() if k in assigned}
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
    nb = with_small_settings(nbformat.read(path, as_version=4), tmp_path / "work")
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
    # Idempotent: a second run in the same work folder reuses the archive, store and training run.
    rerun = with_small_settings(nbformat.read(path, as_version=4), tmp_path / "work")
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
