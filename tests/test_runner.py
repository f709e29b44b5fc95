"""engine.runner: the same outcomes, in task order, in this process, on a process pool and on a real local Ray; a
failing task is named in one line and the others complete."""
import math
import operator
import os

import pytest

from engine.runner import Outcome, RunnerError, Task, one_line, run_tasks

TASKS = [Task("four", math.sqrt, (4.0,)), Task("minus one", math.sqrt, (-1.0,)), Task("nine", math.sqrt, (9.0,)),
         Task("by zero", operator.truediv, (1, 0)), Task("sixteen", math.sqrt, (16.0,))]
EXPECTED = [Outcome("four", 2.0), Outcome("minus one", error="math domain error"), Outcome("nine", 3.0),
            Outcome("by zero", error="ZeroDivisionError: division by zero"), Outcome("sixteen", 4.0)]


def run(**options):
    lines = []
    outcomes = run_tasks(TASKS, quiet=True, report=lines.append, **options)
    return outcomes, sorted(lines)


def test_in_process_and_on_a_pool_the_same_outcomes_and_failure_lines():
    serial, lines = run(jobs=1)
    assert serial == EXPECTED
    assert lines == ["error: by zero: ZeroDivisionError: division by zero", "error: minus one: math domain error"]
    assert run(jobs=2) == (serial, lines)


def test_on_a_local_ray_the_same_outcomes(local_ray):
    assert run(jobs=2, use_ray=True) == run(jobs=1)


def test_bad_jobs_and_one_line_errors():
    with pytest.raises(RunnerError, match="--jobs must be at least 1"):
        run_tasks(TASKS, jobs=-1, quiet=True)
    assert run_tasks([], jobs=2) == []
    assert one_line(ValueError("two\nlines")) == "two lines"
    assert one_line(KeyError("x")) == "KeyError: 'x'"


def test_a_worker_that_dies_fails_its_task_on_ray_and_the_unfinished_ones_on_a_pool(local_ray):
    tasks = [Task("four", math.sqrt, (4.0,)), Task("dies", os._exit, (3,)), Task("nine", math.sqrt, (9.0,))]
    on_ray = run_tasks(tasks, jobs=2, use_ray=True, quiet=True, report=lambda line: None)
    assert [o.value for o in on_ray] == [2.0, None, 3.0] and "WorkerCrashedError" in on_ray[1].error
    on_pool = run_tasks(tasks, jobs=2, quiet=True, report=lambda line: None)
    assert "a worker died" in on_pool[1].error
    assert all(o.ok or "a worker died" in o.error for o in on_pool)
