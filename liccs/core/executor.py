"""Where a run's tasks execute: in this process (``serial``, the default) or on a Ray cluster (``ray``).

A :class:`Task` is one unit of work of ``liccs run`` (today: one attack source) with the cache key its result is
stored under. The task writes its result to the run's cache path itself, so a result that finished survives a
worker that dies later, and a rerun only does the tasks whose result is missing. The stages read results from the
stored files, never from an executor's memory, so a serial run and a Ray run produce the same tables: determinism
comes from the keys and the seeds, not from the order.

On Ray each task is a remote function with its resource request (``num_cpus``; ``num_gpus=1`` for CUDA work),
retried ``max_retries`` times when it raises or its worker dies; a task that still fails is recorded with its key
and error (:class:`TaskRecord`) while the others finish. The run's output and cache paths must be visible to
every worker (a shared filesystem on a cluster): :meth:`RayExecutor.check_shared` refuses to start otherwise.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from liccs.core.errors import LiccsError
from liccs.core.progress import tqdm

EXECUTORS = ("serial", "ray")
INSTALL_RAY = "pip install 'liccs[distributed]'"


class ExecutorError(LiccsError):
    """The executor cannot run here (Ray missing, a worker that cannot see the shared cache, ...)."""


@dataclass(frozen=True)
class Task:
    """``fn(*args)`` under ``key``; ``threads``: torch's intra-op threads in the task (the same as a serial run's,
    so that the numbers do not depend on where it ran)."""

    key: str
    label: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    num_cpus: float = 1
    num_gpus: float = 0
    threads: int = 0


@dataclass
class TaskRecord:
    """What happened to one task: ``done`` or ``failed`` (with the error), its seconds and where it ran; ``stage``:
    the run stage it belongs to, ``batch``: the index of the :meth:`run` call that ran it."""

    key: str
    label: str
    stage: str
    batch: int
    status: str
    seconds: float | None = None
    worker: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _call(fn: Callable[..., Any], threads: int, *args: Any) -> tuple[Any, float, str]:
    """Run one task: (its value, seconds, ``host:pid``). The arguments come one by one, so that Ray resolves
    the object-store references among them."""
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start, f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Records:
    """What every executor keeps: one record per task, and the wall time of each batch (:meth:`run` call)."""

    records: list[TaskRecord] = field(default_factory=list)
    batches: list[tuple[str, float]] = field(default_factory=list)  # (run stage, wall seconds)
    stage: str = ""  # the run stage now running (set by the run job)

    def _record(self, t: Task, status: str, seconds: float | None = None, worker: str = "", error: str = "") -> None:
        self.records.append(TaskRecord(t.key, t.label, self.stage, len(self.batches), status,
                                       None if seconds is None else round(seconds, 3), worker, error))


@dataclass
class SerialExecutor(_Records):
    """Every task in this process, in order; an exception stops the run (today's behaviour)."""

    name: str = "serial"
    #: tasks run in the calling process: their arguments are the caller's objects, not copies
    in_process: bool = True

    def run(self, tasks: Sequence[Task], desc: str, progress: bool = True) -> dict[str, Any]:
        """{key: value} of every task."""
        out: dict[str, Any] = {}
        start = time.perf_counter()
        for t in tqdm(tasks, desc=desc, disable=not progress):
            out[t.key], seconds, worker = _call(t.fn, 0, *t.args)  # the run's threads are already set here
            self._record(t, "done", seconds, worker)
        self.batches.append((self.stage, time.perf_counter() - start))
        return out


@dataclass
class RayExecutor(_Records):
    """Tasks as Ray remote functions. ``address``: ``""`` starts a local instance (``num_cpus`` CPUs), ``auto``
    joins the cluster started by ``ray start``, ``ray://HOST:PORT`` connects a client."""

    address: str = ""
    num_cpus: int | None = None
    max_retries: int = 2
    name: str = "ray"
    #: tasks run in worker processes: what they get is pickled (deployed codecs and live runners stay behind)
    in_process: bool = False

    def start(self) -> Any:
        """Import Ray and connect (once); a clear error says what to install."""
        try:
            import ray
        except ImportError as e:
            raise ExecutorError(f"run.executor = \"ray\" needs Ray ({e}); install it with {INSTALL_RAY}") from None
        if not ray.is_initialized():
            kw: dict[str, Any] = {"address": self.address} if self.address else {"num_cpus": self.num_cpus}
            ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **kw)
        return ray

    def check_shared(self, paths: Sequence[str | Path]) -> None:
        """Refuse to start when a worker cannot see ``paths`` (the run folder and the cache)."""
        ray = self.start()
        seen = ray.get(ray.remote(num_cpus=0)(lambda ps: [Path(p).exists() for p in ps]).remote(
            [str(Path(p).resolve()) for p in paths]))
        missing = [str(p) for p, ok in zip(paths, seen) if not ok]
        if missing:
            raise ExecutorError(f"a Ray worker cannot see {', '.join(missing)}: on a cluster the run folder "
                                f"(run.out) and LICCS_CACHE must be on a filesystem every node shares")

    def run(self, tasks: Sequence[Task], desc: str, progress: bool = True) -> dict[str, Any]:
        """{key: value} of every task that succeeded; failed tasks are in :attr:`records` with their error."""
        ray = self.start()
        start = time.perf_counter()
        remote = ray.remote(_call)
        shared: dict[int, Any] = {}  # one object-store copy per distinct argument (models, images)

        def put(a: Any) -> Any:
            if isinstance(a, (str, int, float, bool, type(None))):
                return a
            if id(a) not in shared:
                shared[id(a)] = ray.put(a)
            return shared[id(a)]

        pending = {remote.options(num_cpus=t.num_cpus, num_gpus=t.num_gpus, max_retries=self.max_retries,
                                  retry_exceptions=True).remote(t.fn, t.threads, *(put(a) for a in t.args)): t
                   for t in tasks}
        out: dict[str, Any] = {}
        failed = 0
        bar = tqdm(total=len(tasks), desc=f"{desc} (ray)", disable=not progress)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            t = pending.pop(ready[0])
            try:
                out[t.key], seconds, worker = ray.get(ready[0])
                self._record(t, "done", seconds, worker)
            except Exception as e:  # noqa: BLE001 -- a task's error (or its dead worker) is recorded, the run goes on
                failed += 1
                last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
                self._record(t, "failed", error=f"{type(e).__name__}: {last}")
            bar.update(1)
            bar.set_postfix(done=len(out), running=len(pending), failed=failed)
        bar.close()
        self.batches.append((self.stage, time.perf_counter() - start))
        return out


def make_executor(name: str, address: str = "", num_cpus: int | None = None) -> SerialExecutor | RayExecutor:
    """``serial`` or ``ray`` (an unknown name lists the valid ones)."""
    if name == "serial":
        return SerialExecutor()
    if name == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus)
    raise ExecutorError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")


def summary(executor: SerialExecutor | RayExecutor, stage_seconds: dict[str, float]) -> dict[str, Any]:
    """Per-task times and the critical path. A stage's driver time is its wall time minus the time it waited on
    its batches of tasks; its work is that plus every task's seconds, its critical path that plus each batch's
    longest task (the tasks of a batch can run side by side, the batches and stages one after another)."""
    work = critical = 0.0
    for stage, wall in stage_seconds.items():
        waits = [w for s, w in executor.batches if s == stage]
        driver = max(0.0, wall - sum(waits))
        batches: dict[int, list[float]] = {}
        for r in executor.records:
            if r.stage == stage and r.seconds is not None:
                batches.setdefault(r.batch, []).append(r.seconds)
        work += driver + sum(sum(v) for v in batches.values())
        critical += driver + sum(max(v) for v in batches.values())
    return {"tasks": [r.to_dict() for r in executor.records],
            "failed": sum(r.status == "failed" for r in executor.records),
            "task_seconds": round(sum(r.seconds or 0.0 for r in executor.records), 2),
            "work_seconds": round(work, 2), "critical_path_seconds": round(critical, 2),
            "speedup_bound": round(work / critical, 2) if critical else None}
