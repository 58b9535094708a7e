"""Training windows over a store: (state at t, forcings at t..t+k, targets at t+1..t+k), normalised."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import torch
from torch.utils.data import Dataset

from forecast.data.features import forcings
from forecast.data.store import TrainingStore
from forecast.errors import InputError

__all__ = ["WindowDataset"]


class WindowDataset(Dataset):
    """Windows of ``n_steps + 1`` consecutive times whose first and last time lie in ``[start, end]``.

    Item ``i`` is a dict of tensors:

    * ``state``    ``(C, nlat, nlon)``: the state at the window's first time, normalised
      ``(x - mean) / std``;
    * ``targets``  ``(n_steps, C, nlat, nlon)``: the next ``n_steps`` states, normalised the same way;
    * ``forcings`` ``(n_steps + 1, F, nlat, nlon)``: known forcings at every time of the window;
    * ``time``     ``()`` int64: the first time, nanoseconds since 1970.

    Normalising targets like inputs (not as tendencies) keeps the loss in one space for every
    unrolled step; residual prediction is the forecaster's business, not the data's.
    """

    def __init__(self, store: TrainingStore, start: datetime | None, end: datetime | None, n_steps: int = 1):
        if n_steps < 1:
            raise ValueError("n_steps must be >= 1")
        self.store = store
        self.n_steps = n_steps
        t = store.times
        lo = np.datetime64(start, "ns") if start is not None else t[0]
        hi = np.datetime64(end, "ns") if end is not None else t[-1]
        first = np.arange(max(t.size - n_steps, 0))
        ok = (t[first] >= lo) & (t[first + n_steps] <= hi)
        self.indices = first[ok]
        if self.indices.size == 0:
            raise InputError(
                f"{store.path}: no window of {n_steps + 1} consecutive times lies in {start} .. {end} "
                f"(store covers {t[0]} .. {t[-1]})"
            )
        self._mean = store.mean.astype(np.float32)[:, None, None]
        self._std = store.std.astype(np.float32)[:, None, None]

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = int(self.indices[i])
        window = np.asarray(self.store.state[j : j + self.n_steps + 1], dtype=np.float32)  # (k+1, C, H, W)
        window = (window - self._mean) / self._std
        times = self.store.times[j : j + self.n_steps + 1]
        return {
            "state": torch.from_numpy(window[0].copy()),
            "targets": torch.from_numpy(window[1:].copy()),
            "forcings": torch.from_numpy(forcings(times, self.store.latitudes, self.store.longitudes)),
            "time": torch.tensor(times[0].astype("int64")),
        }
