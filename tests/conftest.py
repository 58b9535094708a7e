from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ERA5 = REPO.parent / "shared" / "era5"


@pytest.fixture
def era5_dir() -> Path:
    """The real ERA5 files beside the repository; tests using it skip cleanly where it is absent."""
    if not (SHARED_ERA5 / "era5_msl_2.5deg_6h_20251201-20260207.nc").exists():
        pytest.skip(f"real ERA5 data not found at {SHARED_ERA5}")
    return SHARED_ERA5
