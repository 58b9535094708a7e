"""How lazy (dask) work runs: threads, one thread, a ``dask.distributed`` LocalCluster, or a running cluster.

The stages build lazy graphs (ingestion writes, evaluation scores) and hand them here, so *what* is
computed stays separate from *how* it runs. A :func:`session` computes one slab of work after another
(so memory holds one slab); ``scheduler="distributed"`` starts a LocalCluster of ``workers``
single-threaded processes for the whole session; a scheduler address (``tcp://host:8786``) connects to a
cluster that is already running (``dask scheduler`` / ``dask worker``, dask-jobqueue on SLURM or PBS,
dask-kubernetes, Coiled), whose workers must see the same paths (a shared filesystem, or URLs).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import dask
from pydantic import AfterValidator

from forecast.errors import InputError

__all__ = ["SCHEDULER_NAMES", "Scheduler", "Session", "check_scheduler", "preserved_environ", "session"]

SCHEDULER_NAMES = ("threads", "synchronous", "distributed")
# A dask.distributed scheduler's address: protocol://host:port (tcp, tls, ucx, ws, wss).
_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://(\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+)(:\d+)?/?$")
# How long to wait for a running cluster's scheduler before giving up.
CONNECT_TIMEOUT_S = 30


def check_scheduler(value: str) -> str:
    """``value`` if it names a scheduler (:data:`SCHEDULER_NAMES`) or a scheduler address, else ValueError."""
    if value in SCHEDULER_NAMES or _ADDRESS.match(value):
        return value
    raise ValueError(f"scheduler {value!r} is none of {', '.join(SCHEDULER_NAMES)} nor an address such as "
                     "tcp://host:8786")


Scheduler = Annotated[str, AfterValidator(check_scheduler)]


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


@contextlib.contextmanager
def _running_cluster(address: str) -> Iterator[Any]:
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the dask scheduler at {address} ({type(exc).__name__}: {exc}); "
                         "is `dask scheduler` running there?") from exc
    with client:
        yield client


class Session:
    """Computes lists of dask collections on one scheduler; with ``distributed`` or an address, on a cluster."""

    def __init__(self, scheduler: Scheduler, workers: int, client: Any = None):
        self.scheduler, self.workers, self.client = scheduler, workers, client

    def compute(self, tasks: Sequence[Any]) -> tuple:
        """``dask.compute(*tasks)``: the results, in order, as one graph (shared inputs are read once)."""
        if self.client is not None:
            # Culled here: the client would send the graph of every chunk of the inputs (a block of a large
            # product would ship, and make the scheduler walk, the whole product's graph), not those asked for.
            tasks = dask.optimize(*tasks)
            return tuple(self.client.gather(self.client.compute(list(tasks), optimize_graph=False)))
        return dask.compute(*tasks, scheduler=self.scheduler, num_workers=self.workers)

    def worker_memory(self) -> int | None:
        """Bytes each worker of the cluster can hold for the work before dask starts spilling (the smallest
        over the workers): its ``memory_limit`` times dask's ``distributed.worker.memory.target`` fraction, less
        what the process already holds once the stack (numpy, xarray, zarr) is imported. None without a
        cluster or when the workers have no memory limit."""
        if self.client is None:
            return None
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        limits = {addr: w.get("memory_limit") for addr, w in workers.items()}
        if not limits or not all(limits.values()):
            return None
        target = float(dask.config.get("distributed.worker.memory.target", 0.6) or 0.6)
        held = self.client.run(_resident_bytes, workers=list(limits))
        return max(0, min(int(limits[a] * target) - held[a] for a in limits))

    def persist(self, collection: Any) -> Any:
        """``collection`` with its chunks computed and held in memory (on the workers, with a cluster), so
        several computations that start from it read its inputs once."""
        if self.client is not None:
            return self.client.persist(collection)
        return dask.persist(collection, scheduler=self.scheduler, num_workers=self.workers)[0]


def _resident_bytes() -> int:
    """This process's resident memory once the libraries every task of the stages imports are loaded (run on a
    worker, it is the part of the worker's memory limit that the work cannot use)."""
    import numpy  # noqa: F401
    import psutil
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    return int(psutil.Process().memory_info().rss)


@contextlib.contextmanager
def session(scheduler: Scheduler | Session = "threads", workers: int = 2) -> Iterator[Session]:
    """A :class:`Session` for several computations in a row (one cluster started for all of them); given a
    :class:`Session`, that one (a caller that opened it decides when its cluster stops)."""
    if isinstance(scheduler, Session):
        yield scheduler
        return
    if scheduler == "distributed":
        with _local_cluster(workers) as client:
            yield Session(scheduler, workers, client)
        return
    if scheduler not in SCHEDULER_NAMES:
        with _running_cluster(check_scheduler(scheduler)) as client:
            yield Session(scheduler, workers, client)
        return
    yield Session(scheduler, workers)
