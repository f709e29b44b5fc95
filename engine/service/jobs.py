"""Render jobs: the queue of complete render requests, the worker threads that render them (`RenderCache`, so an
edit of a few notes' controls re-renders incrementally) and write their files, progress reports, and cancellation
(by the client, by a newer render of the same clip, by shutdown)."""
from __future__ import annotations

import ctypes
import logging
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from daw_bridge import protocol as p

from ..incremental import Cancelled, RenderCache, Rendered
from ..notes import Clip
from ..presets import PresetError
from .config import Send, ServiceConfig
from .output import RenderFolder
from .preset_cache import PresetCache
from .uploads import RequestState

log = logging.getLogger("engine.service")

CANCELLED_BECAUSE = {p.SUPERSEDED: "superseded by a newer render of the same clip",
                     p.SHUTTING_DOWN: "the engine is shutting down"}  # other reasons: cancelled by the client
PROGRESS_EVERY = 0.1  # seconds between two progress replies


@dataclass(eq=False)
class Job:
    state: RequestState
    clip: Clip
    cancel_reason: str | None = None  # an error code; set from other threads, checked at each progress step
    last_progress: float = 0.0

    @property
    def clip_id(self) -> str:
        return self.state.header["clip"]


class JobQueue:
    """Render jobs waiting for a worker (at most queue_size) and those being rendered. `lock` is the service's (a
    request moves from the uploads to the queue under it); `send` replies."""

    def __init__(self, config: ServiceConfig, lock: threading.RLock, stopping: threading.Event,
                 presets: PresetCache, folder: RenderFolder, send: Send):
        self.config, self.lock, self.stopping = config, lock, stopping
        self.presets, self.folder, self.send = presets, folder, send
        self.cache = RenderCache(config.cache_mb * 2 ** 20, config.incremental, folder.tmp,
                                 config.cache_disk_mb * 2 ** 20)
        self.queue: deque[Job] = deque()
        self.running: set[Job] = set()
        self.work = threading.Condition(lock)

    def counts(self) -> tuple[int, int]:
        """(queued, running) jobs."""
        with self.lock:
            return len(self.queue), len(self.running)

    def submit(self, state: RequestState, clip: Clip) -> None:
        """Queue the render of a complete request (superseding any queued or running render of the same clip) and
        tell the client its place; refuse it when the queue is full or the engine is stopping."""
        req = state.req
        with self.lock:
            if self.stopping.is_set():
                self._fail(state, p.SHUTTING_DOWN, "the engine is shutting down")
                return
            if len(self.queue) >= self.config.queue_size:
                self._fail(state, p.BUSY, f"{len(self.queue)} renders are queued; retry later")
                return
            job = Job(state, clip)
            for other in list(self.queue) + list(self.running):
                if other.clip_id == job.clip_id:
                    self.cancel(other, p.SUPERSEDED, f"superseded by request {req} for the same clip")
            state.job, state.status = job, "queued"
            state.latest = p.encode(p.QUEUED, req, len(self.queue))
            self.queue.append(job)
            self.work.notify()
        self.send(state.latest, state.client)

    def cancel(self, job: Job, code: str, message: str) -> None:
        """(lock held) Drop a queued job at once; a running one stops at its next progress step."""
        if job in self.queue:
            self.queue.remove(job)
            self._fail(job.state, code, message)
        else:
            job.cancel_reason = code

    def shut_down(self) -> None:
        """Fail queued renders with `shutting_down`, cancel running ones, wake the workers (they end: `stopping`)."""
        with self.lock:
            while self.queue:
                self._fail(self.queue.popleft().state, p.SHUTTING_DOWN, "the engine is shutting down")
            for job in self.running:
                job.cancel_reason = p.SHUTTING_DOWN
            self.work.notify_all()

    def _fail(self, state: RequestState, code: str, message: str) -> None:
        """(lock held) Finish a request with an error and tell its client."""
        self.send(state.fail(code, message), state.client)

    # ------------------------------------------------------------------------------------------------ workers

    def worker(self) -> None:
        """A worker thread's loop: render the next job until the engine stops."""
        _set_up_thread(self.config.threads)
        while True:
            job = self._next()
            if job is None:
                return
            self.send(job.state.latest, job.state.client)
            try:
                self._run(job)
            except Exception as error:  # a bug must not stop the worker
                log.error("internal error in a render: %s", traceback.format_exc())
                with self.lock:
                    self._fail(job.state, p.INTERNAL, f"internal error: {error}")
            finally:
                with self.lock:
                    self.running.discard(job)
                _release_memory()

    def _next(self) -> Job | None:
        """Wait for a job and mark it rendering (everyone behind it moves up a place); None once stopping."""
        with self.lock:
            while not self.queue and not self.stopping.is_set():
                self.work.wait()
            if self.stopping.is_set():
                return None
            job = self.queue.popleft()
            self.running.add(job)
            job.state.status = "rendering"
            job.state.latest = p.encode(p.PROGRESS, job.state.req, 0.0)
            for ahead, waiting in enumerate(self.queue):  # everyone moved up one place
                waiting.state.latest = p.encode(p.QUEUED, waiting.state.req, ahead)
            return job

    def _run(self, job: Job) -> None:
        """Render a job and finish its request: done, or the error that stopped it."""
        state = job.state
        started = time.monotonic()
        try:
            rendered, path = self._render(job)
        except Cancelled:
            with self.lock:
                reason = job.cancel_reason or p.CANCELLED
                self._fail(state, reason, CANCELLED_BECAUSE.get(reason, "cancelled by the client"))
            return
        except PresetError as error:
            with self.lock:
                self._fail(state, p.UNKNOWN_PRESET, str(error))
            return
        except Exception as error:
            log.error("render req %d failed: %s", state.req, traceback.format_exc())
            with self.lock:
                self._fail(state, p.RENDER_FAILED, f"{type(error).__name__}: {error}")
            return
        self._done(job, rendered, path, time.monotonic() - started)

    def _render(self, job: Job) -> tuple[Rendered, Path]:
        """Render the clip (incrementally when the cache holds its last render) and write its file."""
        header = job.state.header
        preset = self.presets.get(header["preset"])
        with self.cache.lock(job.clip_id):
            self._check_cancel(job)
            rendered = self.cache.render(job.clip_id, job.clip, preset, header["sample_rate"], header["seed"],
                                         header["length"] or None, progress=lambda d, t: self._progress(job, d, t))
            try:
                self._check_cancel(job)
                path = self.folder.write(job.clip_id, header["file_name"], rendered)
            except BaseException:  # the cached render must stay the one in the clip's last file
                self.cache.forget(job.clip_id)
                self.folder.forget(job.clip_id)
                raise
        return rendered, path

    def _done(self, job: Job, rendered: Rendered, path: Path, seconds: float) -> None:
        """Finish the request: its controls (fetched in chunks later) and the done reply."""
        state = job.state
        remade = set(rendered.rerendered)
        rows = [(n.id, int(n.id in remade), *rendered.controls[n.id]) for n in job.clip.notes]
        datagrams = p.control_chunks(state.req, rows)
        for warning in rendered.warnings:  # before done: a client reads them with the result
            self.send(p.encode(p.WARNING, state.req, warning[:1000]), state.client)
        done = p.encode(p.DONE, state.req, str(path), rendered.duration, rendered.sample_rate, len(rows),
                        len(datagrams), len(rendered.rerendered), rendered.mode, seconds)
        with self.lock:
            state.control_datagrams, state.latest = datagrams, done
            state.status, state.updated = "done", time.monotonic()
        log.info("req %d (clip %r) done: %s render, %d notes re-rendered, %.3f s -> %s", state.req, job.clip_id,
                 rendered.mode, len(rendered.rerendered), seconds, path.name)
        self.send(done, state.client)

    def _check_cancel(self, job: Job) -> None:
        if job.cancel_reason:
            raise Cancelled(job.cancel_reason)

    def _progress(self, job: Job, done: int, total: int) -> None:
        """The render's progress callback: stop if cancelled; tell the client how far it is (at most every 0.1 s)."""
        self._check_cancel(job)
        now = time.monotonic()
        if now - job.last_progress >= PROGRESS_EVERY:
            job.last_progress = now
            message = p.encode(p.PROGRESS, job.state.req, 0.95 * done / max(total, 1))
            with self.lock:
                job.state.latest = message
            self.send(message, job.state.client)


def _set_up_thread(threads: int) -> None:
    """Give this thread the settings every render runs with, before its first render. torch keeps the thread
    count per thread for OpenMP and MKL: a new thread would run its first matrix products with the library
    defaults (all cores) until something re-read the setting, so that its first render would differ in the last
    bits from the next ones. Same threads, same sums, same bytes."""
    import torch

    torch.set_num_threads(max(1, threads))


def _release_memory() -> None:
    """Give the heap's free pages back to the system after a render (glibc keeps them otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc
