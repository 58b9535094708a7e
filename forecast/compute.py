"""How lazy (dask) work runs: threads, one thread, or a ``dask.distributed`` LocalCluster.

The stages build lazy graphs (ingestion writes, evaluation scores) and hand them here, so *what* is
computed stays separate from *how* it runs. ``scheduler="distributed"`` starts a LocalCluster of
``workers`` single-threaded processes for the duration of one call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import dask

__all__ = ["Scheduler", "compute", "preserved_environ"]

Scheduler = Literal["threads", "synchronous", "distributed"]


@contextlib.contextmanager
def preserved_environ() -> Iterator[None]:
    """Restore ``os.environ`` on exit.

    A distributed nanny writes its worker settings (``OMP_NUM_THREADS=1``, ``PYTHONHASHSEED``, ...) into
    this process's environment and leaves them there; later work here (training, subprocesses) must run
    with the threads the user configured.
    """
    environ = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(environ)


def compute(tasks: Sequence[Any], scheduler: Scheduler = "threads", workers: int = 2, progress: bool = False,
            desc: str = "compute") -> tuple:
    """``dask.compute(*tasks)`` on the chosen scheduler, optionally with a progress bar."""
    if scheduler == "distributed":
        from distributed import Client, LocalCluster
        from distributed import progress as dask_progress

        with preserved_environ(), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None) as cluster, Client(cluster) as client:
            futures = client.compute(list(tasks))
            if progress:
                dask_progress(futures)
            return tuple(client.gather(futures))
    if progress:
        from tqdm import tqdm
        from tqdm.dask import TqdmCallback

        with TqdmCallback(desc=desc, unit="task", tqdm_class=tqdm):
            return dask.compute(*tasks, scheduler=scheduler, num_workers=workers)
    return dask.compute(*tasks, scheduler=scheduler, num_workers=workers)
