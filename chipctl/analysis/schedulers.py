"""Where the frames of a batch re-count are counted: here, on a local process pool, or on a
Dask distributed cluster.

Every scheduler runs one picklable function over a list of argument tuples and yields
(index, result) as results come in, keeping a bounded number of tasks in flight so a batch
of a million frames never holds a million futures. A task that fails on the pool or cluster
(a worker died) yields a TaskFailed in place of its result; the batch goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class TaskFailed:
    """A task the scheduler could not run to the end, and why."""

    error: str


class Scheduler(Protocol):
    """Runs `fn(*args)` for every args tuple; yields (index, result) in completion order."""

    description: str
    parallel: bool  # tasks run side by side in other processes or threads

    def map_unordered(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]
                      ) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


class SerialScheduler:
    """Every task in this process, one after the other."""

    description = "serial (this process)"
    parallel = False

    def map_unordered(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]
                      ) -> Iterator[tuple[int, Any]]:
        """Each result as soon as it is computed."""
        for index, item in enumerate(args):
            yield index, fn(*item)

    def close(self) -> None:
        """Nothing to release."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _drain(pending: dict[Any, int], done: Any) -> Iterator[tuple[int, Any]]:
    for future in done:
        index = pending.pop(future)
        try:
            yield index, future.result()
        except Exception as exc:  # noqa: BLE001 - a worker's failure is reported per task
            yield index, TaskFailed(f"{type(exc).__name__}: {exc}")


class PoolScheduler:
    """A local process pool, one worker per usable CPU unless told otherwise.

    Workers start with `forkserver` (spawn where there is none): never a fork of a process
    that runs device, Qt or event-loop threads.
    """

    parallel = True

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or usable_cpus()
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods
                                              else "spawn")
        self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=context)
        self.description = f"local process pool ({self.workers} processes)"

    def map_unordered(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]
                      ) -> Iterator[tuple[int, Any]]:
        """Results as they finish, at most 4 tasks per worker in flight."""
        queue = iter(enumerate(args))
        pending: dict[cf.Future[Any], int] = {}
        window = 4 * self.workers
        while True:
            for index, item in itertools.islice(queue, window - len(pending)):
                pending[self._pool.submit(fn, *item)] = index
            if not pending:
                return
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            yield from _drain(pending, done)

    def close(self) -> None:
        """Stop the workers (tasks not started are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskScheduler:
    """A Dask distributed cluster: one task per frame, submitted through a Client.

    The workers must have chipctl installed and see the run folders at the same paths (a
    shared file system). `client` is an existing distributed.Client, or None to connect to
    `address`; a client made here is closed by close().
    """

    parallel = True

    def __init__(self, address: str | None = None, client: Any = None,
                 timeout_s: float = 10.0) -> None:
        if client is None:
            from distributed import Client

            client = Client(address, timeout=timeout_s, set_as_default=False)
            self._own = True
        else:
            self._own = False
        self.client = client
        self.workers = max(1, sum(client.nthreads().values()))
        address = getattr(client.scheduler, "address", address)
        self.description = f"Dask scheduler {address} ({self.workers} worker threads)"
        self._token = uuid.uuid4().hex[:8]

    def map_unordered(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]
                      ) -> Iterator[tuple[int, Any]]:
        """Results as they finish, at most 4 tasks per worker thread in flight."""
        from distributed import as_completed

        queue = iter(enumerate(args))
        pending: dict[Any, int] = {}
        window = 4 * self.workers

        def submit(batch: int) -> list[Any]:
            futures = []
            for index, item in itertools.islice(queue, batch):
                future = self.client.submit(fn, *item, key=f"chipctl-recount-{self._token}-"
                                                            f"{index}", pure=False)
                pending[future] = index
                futures.append(future)
            return futures

        running = as_completed(submit(window), loop=self.client.loop)
        for future in running:
            index = pending.pop(future)
            yield index, future.result() if future.status == "finished" else _failure(future)
            future.release()
            running.update(submit(1))

    def close(self) -> None:
        """Close the client if it was made here (the cluster itself keeps running)."""
        if self._own:
            self.client.close()


def _failure(future: Any) -> TaskFailed:
    """What went wrong with a Dask future that did not finish (error, cancelled, lost)."""
    try:
        exc = future.exception()
    except BaseException as raised:  # noqa: BLE001 - a cancelled future raises here
        exc = raised
    return TaskFailed(f"{type(exc).__name__}: {exc}" if exc else f"task {future.status}")
