"""Run independent tasks (a picklable function and its arguments) on a local process pool or on Ray.

`run_tasks(tasks, jobs, ray_address=...)` gives one `Outcome` per task, in the order of the tasks, whichever runner ran
them: the same functions on the same arguments give the same results. A task that raises is reported in one line
(its label: why) as soon as it ends and the others go on; a tqdm bar counts tasks done. Ctrl-C stops cleanly: tasks
not started are dropped, running ones are interrupted (their atomic writes remove their temporary files) and
`KeyboardInterrupt` reaches the caller.

- jobs 1 (or a single task): in this process, one task after another (no pool: what the serial builds always did).
- jobs N > 1: a pool of N spawned processes (spawned, not forked: no torch thread state crosses over), each on one
  thread (OMP_NUM_THREADS=1, as Ray sets for its workers).
- Ray: `use_ray=True` starts a local Ray instance (`ray.init`, num_cpus = jobs) for the run and shuts it down after;
  `ray_address` (or $RAY_ADDRESS) connects to an existing cluster instead; a Ray already initialised in this process
  (a test's) is used as it is. Ray is imported only here and only then (`pip install daw-ddsp[ray]`).

Standard library only at import time: the CLI checks its arguments before anything heavy loads.
"""
from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence


class RunnerError(Exception):
    """The runner cannot start (Ray missing, a cluster that does not answer); one line."""


@dataclass
class Task:
    label: str  # what a failure line names: the input file, the piece
    function: Callable[..., Any]  # module-level, so that it pickles by name
    args: tuple = ()


@dataclass
class RunnerOptions:
    """Where a command's tasks run: `jobs` at once (None: one per core), on Ray or not, at which cluster address."""
    jobs: int | None = 1
    use_ray: bool = False
    ray_address: str | None = None

    def run(self, tasks: Sequence["Task"], **kwargs) -> list["Outcome"]:
        """run_tasks(tasks) here (kwargs: its desc, unit, quiet, report)."""
        return run_tasks(tasks, self.jobs, use_ray=self.use_ray, ray_address=self.ray_address, **kwargs)


@dataclass
class Outcome:
    label: str
    value: Any = None
    error: str | None = None  # one line, when the task failed

    @property
    def ok(self) -> bool:
        return self.error is None


def one_line(error: BaseException) -> str:
    """An exception as one line: its message (with the type when the message alone says little)."""
    message = " ".join(str(error).split())
    if isinstance(error, (ValueError, OSError, RuntimeError)) and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def call(function: Callable[..., Any], args: tuple) -> tuple[bool, Any]:
    """Run one task where it lands: (True, value) or (False, one-line error). Interrupts go through."""
    global _running
    _running = True
    try:
        return True, function(*args)
    except Exception as error:  # a task's failure is data: the other tasks go on
        return False, one_line(error)
    finally:
        _running = False


_running = False  # a pool worker is inside a task (its Ctrl-C interrupts the task; an idle worker ignores it)


def _interrupt_running_task(signum, frame) -> None:
    if _running:
        raise KeyboardInterrupt


def _init_pool_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker, as Ray gives its workers
    signal.signal(signal.SIGINT, _interrupt_running_task)


def default_jobs() -> int:
    """The cores this process may use (its CPU affinity): the default number of tasks, or of render threads."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_tasks(tasks: Sequence[Task], jobs: int | None = None, use_ray: bool = False, ray_address: str | None = None,
              desc: str = "tasks", unit: str = "task", quiet: bool = False,
              report: Callable[[str], None] | None = None) -> list[Outcome]:
    """Run every task; -> outcomes in task order. `report(line)` gets each failure line as it happens (default:
    printed above the progress bar as `error: LABEL: why`). Raises RunnerError when the runner cannot start."""
    from tqdm import tqdm

    jobs = jobs or default_jobs()
    if jobs < 1:
        raise RunnerError("--jobs must be at least 1")
    ray_address = ray_address or (os.environ.get("RAY_ADDRESS") if use_ray else None)
    ray, started = connect_ray(jobs, ray_address) if tasks and (use_ray or ray_address) else (None, False)
    outcomes: list[Outcome | None] = [None] * len(tasks)
    try:
        with tqdm(total=len(tasks), desc=desc, unit=unit, disable=quiet or not tasks, file=sys.stderr) as bar:
            def finished(index: int, ok: bool, value: Any) -> None:
                outcome = Outcome(tasks[index].label, value if ok else None, None if ok else value)
                outcomes[index] = outcome
                if not ok:
                    line = f"error: {outcome.label}: {outcome.error}"
                    report(line) if report else bar.write(line, file=sys.stderr)
                bar.update(1)

            if ray is not None:
                _run_on_ray(ray, tasks, finished)
            elif jobs == 1 or len(tasks) <= 1:
                for index, task in enumerate(tasks):
                    finished(index, *call(task.function, task.args))
            else:
                _run_on_pool(tasks, jobs, finished)
    finally:
        if started:
            ray.shutdown()
    return outcomes  # type: ignore[return-value]


def _run_on_pool(tasks: Sequence[Task], jobs: int, finished: Callable[[int, bool, Any], None]) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context, initializer=_init_pool_worker)
    try:
        pending = {pool.submit(call, task.function, task.args): index for index, task in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                try:
                    finished(index, *future.result())
                except BrokenProcessPool:
                    finished(index, False, "the process pool broke: a worker died (out of memory, or killed); "
                                           "run again for the tasks it took down")
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # running tasks end (interrupted or complete), no partial file
        raise
    pool.shutdown(wait=True)


def connect_ray(jobs: int, address: str | None):
    """-> (the ray module, whether this call started it): a Ray already initialised in this process as it is, else
    the cluster at `address`, else a local instance with `jobs` CPUs."""
    try:
        import ray
    except ImportError:
        raise RunnerError("Ray is not installed: pip install 'daw-ddsp[ray]' (or ray), or leave out --ray") from None
    if ray.is_initialized():
        return ray, False
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(num_cpus=jobs, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RunnerError(f"cannot start Ray{f' at {address}' if address else ''}: {one_line(error)}") from None
    return ray, True


def _run_on_ray(ray, tasks: Sequence[Task], finished: Callable[[int, bool, Any], None]) -> None:
    remote_call = ray.remote(num_cpus=1, max_retries=0)(call)
    pending = {remote_call.remote(task.function, task.args): index for index, task in enumerate(tasks)}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    finished(index, *ray.get(ref))
                except ray.exceptions.RayError as error:  # the worker died, the node went away
                    finished(index, False, one_line(getattr(error, "cause", None) or error))
    except BaseException:
        for ref in pending:
            ray.cancel(ref)  # a KeyboardInterrupt inside each running task: its atomic write cleans up
        if pending:
            ray.wait(list(pending), num_returns=len(pending), timeout=30)
        raise


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail in one line when a HOST:PORT Ray address does not answer (ray.init would retry for minutes); other forms
    (ray://..., auto) are left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise RunnerError(f"cannot reach the Ray cluster at {address}: {error.strerror or error}") from None
