import os
from pathlib import Path

import pytest
import torch

# Under pytest-xdist (`make test` runs two workers) each worker gets its share of the cores for torch's
# intra-op threads, so the workers do not oversubscribe the machine; subprocesses keep their own defaults.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))

REPO = Path(__file__).resolve().parents[1]
SHARED_ERA5 = REPO.parent / "shared" / "era5"


@pytest.fixture
def era5_dir() -> Path:
    """The real ERA5 files beside the repository; tests using it skip cleanly where it is absent."""
    if not (SHARED_ERA5 / "era5_msl_2.5deg_6h_20251201-20260207.nc").exists():
        pytest.skip(f"real ERA5 data not found at {SHARED_ERA5}")
    return SHARED_ERA5
