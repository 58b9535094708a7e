"""How lazy (dask) work runs: threads, one thread, or a ``dask.distributed`` LocalCluster.

The stages build lazy graphs (ingestion writes, evaluation scores) and hand them here, so *what* is
computed stays separate from *how* it runs. A :func:`session` computes one slab of work after another
(so memory holds one slab); ``scheduler="distributed"`` starts a LocalCluster of ``workers``
single-threaded processes for the whole session.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import dask

__all__ = ["Scheduler", "Session", "preserved_environ", "session"]

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


@contextlib.contextmanager
def _local_cluster(workers: int) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with preserved_environ(), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


class Session:
    """Computes lists of dask collections on one scheduler; with ``distributed``, on one LocalCluster."""

    def __init__(self, scheduler: Scheduler, workers: int, client: Any = None):
        self.scheduler, self.workers, self.client = scheduler, workers, client

    def compute(self, tasks: Sequence[Any]) -> tuple:
        """``dask.compute(*tasks)``: the results, in order, as one graph (shared inputs are read once)."""
        if self.client is not None:
            return tuple(self.client.gather(self.client.compute(list(tasks))))
        return dask.compute(*tasks, scheduler=self.scheduler, num_workers=self.workers)


@contextlib.contextmanager
def session(scheduler: Scheduler = "threads", workers: int = 2) -> Iterator[Session]:
    """A :class:`Session` for several computations in a row (one cluster started for all of them)."""
    if scheduler == "distributed":
        with _local_cluster(workers) as client:
            yield Session(scheduler, workers, client)
        return
    yield Session(scheduler, workers)
