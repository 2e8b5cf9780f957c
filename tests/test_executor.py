"""Executors: serial (in process) and Ray (a local cluster the tests start and stop), task failures and retries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from liccs.core.executor import ExecutorError, RayExecutor, SerialExecutor, Task, TaskRecord, make_executor, summary


def square(x: int) -> int:
    return x * x


def fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def die_once(marker: str) -> str:
    """Kill this worker process the first time (as a crashed or killed worker would), succeed on the retry."""
    if not os.path.exists(marker):
        Path(marker).write_text("died")
        os._exit(1)
    return "survived"


def die_always(x: int) -> int:
    os._exit(1)


def test_unknown_executor_lists_the_valid_ones():
    with pytest.raises(ExecutorError, match="serial, ray"):
        make_executor("dask")


def test_the_executor_says_whether_its_tasks_get_the_callers_objects():
    # the stages ship deployed codecs and live runners only to in-process tasks (Ray pickles what it sends)
    assert make_executor("serial").in_process and not RayExecutor().in_process


def test_serial_runs_every_task_in_order_and_records_it():
    ex = SerialExecutor()
    out = ex.run([Task(f"k{i}", f"t{i}", square, (i,)) for i in range(4)], "stage", progress=False)
    assert out == {"k0": 0, "k1": 1, "k2": 4, "k3": 9}
    assert [r.key for r in ex.records] == ["k0", "k1", "k2", "k3"] and {r.status for r in ex.records} == {"done"}
    with pytest.raises(ValueError, match="bad input 7"):  # serial keeps today's behaviour: an error stops the run
        ex.run([Task("k", "t", fail, (7,))], "stage", progress=False)


def test_the_critical_path_is_each_batchs_longest_task_plus_the_driver_time():
    ex = SerialExecutor()
    ex.stage = "attack"
    ex.records = [TaskRecord("a", "a", "attack", 0, "done", 3.0), TaskRecord("b", "b", "attack", 0, "done", 5.0),
                  TaskRecord("c", "c", "attack", 1, "done", 2.0), TaskRecord("d", "d", "attack", 1, "failed")]
    ex.batches = [("attack", 10.0), ("attack", 2.0)]  # as run serially: 3 + 5 + 2 (+ overhead)
    s = summary(ex, {"load": 1.0, "export": 4.0, "attack": 13.0})
    # driver time: load 1 + export 4 + attack 13 - 12 waiting = 6; work 6 + 10; critical 6 + max(3, 5) + 2
    assert s["task_seconds"] == 10.0 and s["work_seconds"] == 16.0 and s["critical_path_seconds"] == 13.0
    assert s["failed"] == 1 and s["speedup_bound"] == round(16 / 13, 2)


@pytest.fixture(scope="module")
def ray_executor(ray_session):
    ex = RayExecutor(num_cpus=2, max_retries=2)
    ex.start()
    return ex


def test_ray_returns_every_result_under_its_key(ray_executor):
    out = ray_executor.run([Task(f"k{i}", f"t{i}", square, (i,)) for i in range(6)], "stage", progress=False)
    assert out == {f"k{i}": i * i for i in range(6)}


def test_ray_reports_a_failing_task_with_its_key_while_the_others_finish(ray_executor):
    ray_executor.records.clear()
    out = ray_executor.run([Task("ok", "ok", square, (3,)), Task("bad", "bad", fail, (5,))], "stage",
                           progress=False)
    assert out == {"ok": 9}
    (bad,) = [r for r in ray_executor.records if r.status == "failed"]
    assert bad.key == "bad" and "bad input 5" in bad.error


def test_a_killed_worker_is_retried_and_the_task_finishes(ray_executor, tmp_path):
    out = ray_executor.run([Task("k", "k", die_once, (str(tmp_path / "marker"),))], "stage", progress=False)
    assert out == {"k": "survived"} and (tmp_path / "marker").read_text() == "died"


def test_a_task_whose_worker_always_dies_is_named_not_silently_missing(ray_executor):
    ray_executor.records.clear()
    out = ray_executor.run([Task("lost", "lost", die_always, (1,)), Task("ok", "ok", square, (2,))], "stage",
                           progress=False)
    assert out == {"ok": 4}
    assert [(r.key, r.status) for r in ray_executor.records if r.status == "failed"] == [("lost", "failed")]


def test_a_worker_that_cannot_see_the_cache_stops_the_run(ray_executor, tmp_path):
    with pytest.raises(ExecutorError, match="every node shares"):
        ray_executor.check_shared([tmp_path, tmp_path / "not-there"])
