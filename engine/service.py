"""The background engine service (`python -m engine serve`): the OSC protocol of docs/protocol.md over UDP.

One network thread reads datagrams, answers everything it can at once (handshake, ping, preset list, chunk acks,
status, control fetches) and queues complete render requests; worker threads render them (`RenderCache`, so an
edit of a few notes' controls re-renders incrementally) and write the files atomically into the render folder. No
request, however malformed, stops the service: each gets an error reply and is forgotten.
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from daw_bridge import protocol as p

from . import __version__
from .incremental import Cancelled, RenderCache, Rendered
from .notes import Clip, NoteError
from .presets import Preset, PresetError, find_preset, list_presets, load_preset

log = logging.getLogger("engine.service")

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(wav|flac)")
PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
TMP_DIR = ".tmp"
MAX_WARNINGS = 10


def default_render_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ddsp-engine" / "renders"


@dataclass
class ServiceConfig:
    host: str = p.DEFAULT_HOST
    port: int = p.DEFAULT_PORT
    render_dir: Path | None = None  # default: default_render_dir()
    workers: int = 1
    threads: int = 1  # torch threads for all renders together (a loaded machine slows down a lot with more)
    queue_size: int = 16  # queued renders (not counting running ones)
    max_uploads: int = 64  # uploads open at once
    upload_timeout: float = 30.0  # seconds without a new chunk before an upload expires
    result_ttl: float = 600.0  # seconds a finished request stays answerable (status, fetch)
    keep_hours: float = 72.0  # renders older than this are deleted
    cache_mb: int = 256  # incremental-render state kept across clips (a 3-minute 2-voice clip at 48 kHz: ~80 MB)
    incremental: bool = True
    preload: tuple[str, ...] = ()


@dataclass(eq=False)
class RequestState:
    client: tuple[str, int]
    req: int
    header: dict
    chunks: dict[int, list[dict]] = field(default_factory=dict)
    updated: float = field(default_factory=time.monotonic)
    status: str = "receiving"  # receiving, queued, rendering, done, failed
    latest: bytes = b""  # the message /ddsp/status re-sends
    job: "Job | None" = None
    control_datagrams: list[bytes] = field(default_factory=list)


@dataclass(eq=False)
class Job:
    state: RequestState
    clip: Clip
    cancel_reason: str | None = None  # an error code; set from other threads, checked at each progress step
    last_progress: float = 0.0

    @property
    def clip_id(self) -> str:
        return self.state.header["clip"]


class Service:
    """Start with `start()` (threads; returns once bound: `port` is set), stop with `stop()`. `serve()` runs one
    in the foreground until SIGINT/SIGTERM."""

    def __init__(self, config: ServiceConfig | None = None):
        self.config = config or ServiceConfig()
        self.render_dir = Path(self.config.render_dir or default_render_dir()).resolve()
        self.engine_id = secrets.token_hex(4)
        self.cache = RenderCache(self.config.cache_mb * 2 ** 20, self.config.incremental)
        self.presets: dict[str, Preset] = {}
        self.last_files: dict[str, tuple[Path, tuple | None]] = {}  # clip id -> (last file, its _signature)
        self.loading: dict[str, list[tuple[tuple[str, int], int]]] = {}  # preset -> (client, req) waiting
        self._preset_lock = threading.Lock()
        self.requests: dict[tuple[tuple[str, int], int], RequestState] = {}
        self.queue: deque[Job] = deque()
        self.running: set[Job] = set()
        self.lock = threading.RLock()
        self.work = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.sock: socket.socket | None = None
        self.threads: list[threading.Thread] = []
        self.started = time.monotonic()
        self._send_lock = threading.Lock()
        self._seq = 0
        self._last_clean = self._last_housekeeping = 0.0

    # ------------------------------------------------------------------------------------------------ life cycle

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self) -> "Service":
        (self.render_dir / TMP_DIR).mkdir(parents=True, exist_ok=True)
        self._clean_renders()
        import torch

        torch.set_num_threads(max(1, self.config.threads))
        for name in self.config.preload:
            self._preset(name)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2 ** 20)
        self.sock.bind((self.config.host, self.config.port))
        self.sock.settimeout(0.2)
        self.threads = [threading.Thread(target=self._network_loop, name="osc", daemon=True)]
        self.threads += [threading.Thread(target=self._worker, name=f"render-{i}", daemon=True)
                         for i in range(max(1, self.config.workers))]
        for thread in self.threads:
            thread.start()
        log.info("engine %s (protocol %d) listening on %s:%d, renders in %s", self.engine_id, p.PROTOCOL_VERSION,
                 self.config.host, self.port, self.render_dir)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new work, fail queued renders with `shutting_down`, cancel running ones, join the threads."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        with self.lock:
            while self.queue:
                self._fail(self.queue.popleft().state, p.SHUTTING_DOWN, "the engine is shutting down")
            for job in self.running:
                job.cancel_reason = p.SHUTTING_DOWN
            self.work.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.sock:
            self.sock.close()
        log.info("engine %s stopped", self.engine_id)

    # ------------------------------------------------------------------------------------------------ network

    def _network_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                data, address = self.sock.recvfrom(65536)
            except socket.timeout:
                data = None
            except OSError:  # e.g. Windows reports an earlier reply's unreachable port here
                if self.stopping.is_set():
                    return
                continue
            if data is not None:
                self._datagram(data, address)
            self._housekeeping()

    def _send(self, data: bytes, client: tuple[str, int]) -> None:
        try:
            with self._send_lock:
                self.sock.sendto(data, client)
        except OSError as error:
            log.debug("cannot reply to %s: %s", client, error)

    def _error(self, client: tuple[str, int], req: int, code: str, message: str) -> None:
        log.info("error to %s:%d req %d: %s: %s", client[0], client[1], req, code, message)
        self._send(p.encode(p.ERROR, req, code, message[:1000]), client)

    def _datagram(self, data: bytes, address: tuple[str, int]) -> None:
        for item in p.decode(data, p.REQUESTS):
            if isinstance(item, p.ProtocolError):
                self._error((address[0], item.reply_port or address[1]), item.req, item.code, str(item))
                continue
            client = (address[0], item.reply_port or address[1])
            try:
                HANDLERS[item.address](self, client, item)
            except p.ProtocolError as error:
                self._error(client, error.req or item.req, error.code, str(error))
            except Exception as error:  # a bug must not stop the service
                log.error("internal error on %s: %s", item.address, traceback.format_exc())
                self._error(client, item.req, p.INTERNAL, f"internal error: {error}")

    def _housekeeping(self) -> None:
        """Once a second: expire stalled uploads and old results; every 10 minutes: delete old renders."""
        now = time.monotonic()
        if now - self._last_housekeeping < 1.0:
            return
        self._last_housekeeping = now
        with self.lock:
            for key, state in list(self.requests.items()):
                age = now - state.updated
                if state.status == "receiving" and age > self.config.upload_timeout:
                    del self.requests[key]
                    self._error(state.client, state.req, p.EXPIRED,
                                f"upload incomplete for {self.config.upload_timeout:g} s "
                                f"({len(state.chunks)} of {state.header['n_chunks']} chunks)")
                elif state.status in ("done", "failed") and age > self.config.result_ttl:
                    del self.requests[key]
        if now - self._last_clean > 600:
            self._clean_renders()

    # ------------------------------------------------------------------------------------------------ handlers

    def _hello(self, client, msg: p.Parsed) -> None:
        if msg.fields["protocol"] != p.PROTOCOL_VERSION:
            raise p.ProtocolError(p.VERSION, f"the engine speaks protocol {p.PROTOCOL_VERSION}, the client "
                                             f"{msg.fields['protocol']}", msg.req)
        log.info("hello from %s:%d (%s)", client[0], client[1], msg.fields["client"][:80])
        self._send(p.encode(p.WELCOME, msg.req, p.PROTOCOL_VERSION, __version__, self.engine_id, p.MAX_DATAGRAM),
                   client)

    def _ping(self, client, msg: p.Parsed) -> None:
        with self.lock:
            queued, running = len(self.queue), len(self.running)
        self._send(p.encode(p.PONG, msg.req, self.engine_id, queued, running, time.monotonic() - self.started),
                   client)

    def _presets(self, client, msg: p.Parsed) -> None:
        found = list_presets()
        self._send(p.encode(p.PRESET_COUNT, msg.req, len(found)), client)
        for index, info in enumerate(found):
            program = info.get("program")
            self._send(p.encode(p.PRESET, msg.req, index, info["name"], str(info["kind"]),
                                str(info.get("instrument") or ""), -1 if program is None else int(program),
                                int(info["name"] in self.presets), str(info["description"])[:500]), client)

    def _load(self, client, msg: p.Parsed) -> None:
        """Load in a thread (a neural preset takes a while); repeated requests while it loads just wait for it."""
        name = self._check_preset(msg.fields["preset"], msg.req)
        with self.lock:
            if name in self.presets:
                self._send(p.encode(p.LOADED, msg.req, name), client)
                return
            waiting = self.loading.setdefault(name, [])
            waiting.append((client, msg.req))
            if len(waiting) > 1:
                return

        def load():
            try:
                self._preset(name)
                error = None
            except PresetError as failure:
                error = str(failure)
            with self.lock:
                waiters = self.loading.pop(name, [])
            for who, req in set(waiters):
                if error:
                    self._error(who, req, p.UNKNOWN_PRESET, error)
                else:
                    self._send(p.encode(p.LOADED, req, name), who)

        threading.Thread(target=load, name=f"load-{name}", daemon=True).start()

    def _render(self, client, msg: p.Parsed) -> None:
        header, req = msg.fields, msg.req
        with self.lock:
            state = self.requests.get((client, req))
            if state is not None:
                if state.header != header:
                    raise p.ProtocolError(p.DUPLICATE_REQUEST, f"request id {req} is in use for clip "
                                                               f"{state.header['clip']!r}", req)
                self._send(state.latest, client)
                return
        self._check_header(header, req)
        with self.lock:
            if self.stopping.is_set():
                raise p.ProtocolError(p.SHUTTING_DOWN, "the engine is shutting down", req)
            if sum(s.status == "receiving" for s in self.requests.values()) >= self.config.max_uploads:
                raise p.ProtocolError(p.BUSY, f"{self.config.max_uploads} uploads are open; retry later", req)
            state = RequestState(client, req, header, latest=p.encode(p.ACK, req, -1))
            self.requests[(client, req)] = state
        log.info("render req %d from %s:%d: clip %r, preset %s, %d notes in %d chunks", req, client[0], client[1],
                 header["clip"], header["preset"], header["n_notes"], header["n_chunks"])
        self._send(state.latest, client)

    def _check_header(self, header: dict, req: int) -> None:
        def bad(code, text):
            raise p.ProtocolError(code, text, req)

        if not 1 <= len(header["clip"]) <= p.MAX_NAME_CHARS:
            bad(p.TOO_LARGE if header["clip"] else p.BAD_ARGUMENTS, f"clip id must be 1-{p.MAX_NAME_CHARS} characters")
        self._check_preset(header["preset"], req)
        if not p.MIN_SAMPLE_RATE <= header["sample_rate"] <= p.MAX_SAMPLE_RATE:
            bad(p.BAD_ARGUMENTS, f"sample rate {header['sample_rate']} is outside "
                                 f"{p.MIN_SAMPLE_RATE}-{p.MAX_SAMPLE_RATE} Hz")
        n_notes, n_chunks = header["n_notes"], header["n_chunks"]
        if n_notes > p.MAX_NOTES or n_chunks > p.MAX_CHUNKS:
            bad(p.TOO_LARGE, f"{n_notes} notes in {n_chunks} chunks: at most {p.MAX_NOTES} notes and "
                             f"{p.MAX_CHUNKS} chunks")
        if n_notes < 1 or not 1 <= n_chunks <= n_notes:
            bad(p.BAD_ARGUMENTS, f"{n_notes} notes in {n_chunks} chunks: need 1 <= chunks <= notes")
        if header["length"] < 0 or header["length"] > p.MAX_SECONDS:
            bad(p.TOO_LARGE if header["length"] > 0 else p.BAD_ARGUMENTS,
                f"length {header['length']} s: use 0 (automatic) or up to {p.MAX_SECONDS:g} s")
        if header["file_name"] and not FILE_NAME.fullmatch(header["file_name"]):
            bad(p.BAD_FILE_NAME, f"file name {header['file_name'][:120]!r} is not a bare name ending .wav or .flac")

    def _check_preset(self, name: str, req: int) -> str:
        if not PRESET_NAME.fullmatch(name):
            raise p.ProtocolError(p.UNKNOWN_PRESET, f"preset name {name[:80]!r} is not a preset name", req)
        if name not in self.presets:
            try:
                find_preset(name)
            except PresetError as error:
                raise p.ProtocolError(p.UNKNOWN_PRESET, str(error), req) from None
        return name

    def _known(self, client, req: int) -> RequestState:
        state = self.requests.get((client, req))
        if state is None:
            raise p.ProtocolError(p.UNKNOWN_REQUEST, f"no request {req} from this client (finished more than "
                                                     f"{self.config.result_ttl:g} s ago, or the engine restarted)",
                                  req)
        return state

    def _notes(self, client, msg: p.Parsed) -> None:
        req, chunk = msg.req, msg.fields["chunk"]
        with self.lock:
            state = self._known(client, req)
            if not 0 <= chunk < state.header["n_chunks"]:
                raise p.ProtocolError(p.BAD_ARGUMENTS, f"chunk {chunk} is outside 0..{state.header['n_chunks'] - 1}",
                                      req)
            if not msg.records:
                raise p.ProtocolError(p.BAD_ARGUMENTS, f"chunk {chunk} holds no notes", req)
            long_id = next((r["id"] for r in msg.records if not 1 <= len(r["id"]) <= p.MAX_ID_CHARS), None)
            if long_id is not None:
                raise p.ProtocolError(p.TOO_LARGE if long_id else p.BAD_ARGUMENTS,
                                      f"note id {long_id[:40]!r} must be 1-{p.MAX_ID_CHARS} characters", req)
            if state.status == "receiving":
                state.chunks.setdefault(chunk, msg.records)
                state.updated = time.monotonic()
            complete = state.status == "receiving" and len(state.chunks) == state.header["n_chunks"]
        self._send(p.encode(p.ACK, req, chunk), client)
        if complete:
            self._complete(state)

    def _complete(self, state: RequestState) -> None:
        """All chunks are in: check the notes and queue the render."""
        header, req = state.header, state.req
        records = [r for i in sorted(state.chunks) for r in state.chunks[i]]
        state.chunks = {}
        try:
            if len(records) != header["n_notes"]:
                raise NoteError(f"the header announced {header['n_notes']} notes, the chunks hold {len(records)}")
            notes = []
            for record in records:
                controls = p.controls_tuple(record)
                notes.append({"id": record["id"], "pitch": record["pitch"], "onset": record["onset"],
                              "offset": record["offset"], "velocity": record["velocity"], "controls": controls})
            clip = Clip.from_data(notes, name=header["clip"], repair=True)
        except NoteError as error:
            with self.lock:
                self._fail(state, p.BAD_NOTES, str(error))
            return
        for repair in clip.repairs[:MAX_WARNINGS]:
            self._send(p.encode(p.WARNING, req, repair), state.client)
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
                    self._cancel(other, p.SUPERSEDED, f"superseded by request {req} for the same clip")
            state.job, state.status = job, "queued"
            state.latest = p.encode(p.QUEUED, req, len(self.queue))
            self.queue.append(job)
            self.work.notify()
        self._send(state.latest, state.client)

    def _cancel(self, job: Job, code: str, message: str) -> None:
        """(lock held) Drop a queued job at once; a running one stops at its next progress step."""
        if job in self.queue:
            self.queue.remove(job)
            self._fail(job.state, code, message)
        else:
            job.cancel_reason = code

    def _fail(self, state: RequestState, code: str, message: str) -> None:
        """(lock held) Finish a request with an error and tell its client."""
        state.status, state.updated = "failed", time.monotonic()
        state.latest = p.encode(p.ERROR, state.req, code, message[:1000])
        log.info("req %d (clip %r) failed: %s: %s", state.req, state.header["clip"], code, message)
        self._send(state.latest, state.client)

    def _status(self, client, msg: p.Parsed) -> None:
        with self.lock:
            latest = self._known(client, msg.req).latest
        self._send(latest, client)

    def _fetch(self, client, msg: p.Parsed) -> None:
        first, count = msg.fields["first"], msg.fields["count"]
        with self.lock:
            state = self._known(client, msg.req)
            if state.status != "done":
                raise p.ProtocolError(p.BAD_ARGUMENTS, f"request {msg.req} has no controls yet ({state.status})",
                                      msg.req)
            datagrams = state.control_datagrams
        if not (0 <= first < len(datagrams) and 1 <= count <= p.MAX_FETCH):
            raise p.ProtocolError(p.BAD_ARGUMENTS, f"fetch {first}+{count}: chunks are 0..{len(datagrams) - 1}, "
                                                   f"1..{p.MAX_FETCH} at a time", msg.req)
        for data in datagrams[first:first + count]:
            self._send(data, client)

    def _cancel_request(self, client, msg: p.Parsed) -> None:
        with self.lock:
            state = self._known(client, msg.req)
            if state.status == "receiving":
                del self.requests[(client, msg.req)]
                self._fail(state, p.CANCELLED, "cancelled by the client")
            elif state.status in ("queued", "rendering"):
                self._cancel(state.job, p.CANCELLED, "cancelled by the client")
            else:
                self._send(state.latest, client)  # finished: nothing to cancel

    # ------------------------------------------------------------------------------------------------ rendering

    def _preset(self, name: str) -> Preset:
        with self._preset_lock:
            preset = self.presets.get(name)
            if preset is None:
                preset = self.presets[name] = load_preset(name)
                log.info("loaded preset %s (%s)", name, preset.kind)
            return preset

    def _worker(self) -> None:
        while True:
            with self.lock:
                while not self.queue and not self.stopping.is_set():
                    self.work.wait()
                if self.stopping.is_set():
                    return
                job = self.queue.popleft()
                self.running.add(job)
                job.state.status = "rendering"
                job.state.latest = p.encode(p.PROGRESS, job.state.req, 0.0)
                for ahead, waiting in enumerate(self.queue):  # everyone moved up one place
                    waiting.state.latest = p.encode(p.QUEUED, waiting.state.req, ahead)
            self._send(job.state.latest, job.state.client)
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

    def _run(self, job: Job) -> None:
        state, header = job.state, job.state.header
        started = time.monotonic()
        try:
            preset = self._preset(header["preset"])
            with self.cache.lock(job.clip_id):
                self._check_cancel(job)
                rendered = self.cache.render(job.clip_id, job.clip, preset, header["sample_rate"], header["seed"],
                                             header["length"] or None, progress=lambda d, t: self._progress(job, d, t))
                try:
                    self._check_cancel(job)
                    path = self._write(job, rendered)
                except BaseException:  # the cached render must stay the one in the clip's last file
                    self.cache.forget(job.clip_id)
                    self.last_files.pop(job.clip_id, None)
                    raise
        except Cancelled:
            with self.lock:
                reason = job.cancel_reason or p.CANCELLED
                self._fail(state, reason, {p.SUPERSEDED: "superseded by a newer render of the same clip",
                                           p.SHUTTING_DOWN: "the engine is shutting down"}.get(
                                               reason, "cancelled by the client"))
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
        seconds = time.monotonic() - started
        remade = set(rendered.rerendered)
        rows = [(n.id, int(n.id in remade), *rendered.controls[n.id]) for n in job.clip.notes]
        datagrams = p.control_chunks(state.req, rows)
        done = p.encode(p.DONE, state.req, str(path), rendered.duration, rendered.sample_rate, len(rows),
                        len(datagrams), len(rendered.rerendered), rendered.mode, seconds)
        with self.lock:
            state.control_datagrams, state.latest = datagrams, done
            state.status, state.updated = "done", time.monotonic()
        log.info("req %d (clip %r) done: %s render, %d notes re-rendered, %.3f s -> %s", state.req, job.clip_id,
                 rendered.mode, len(rendered.rerendered), seconds, path.name)
        self._send(done, state.client)

    def _check_cancel(self, job: Job) -> None:
        if job.cancel_reason:
            raise Cancelled(job.cancel_reason)

    def _progress(self, job: Job, done: int, total: int) -> None:
        self._check_cancel(job)
        now = time.monotonic()
        if now - job.last_progress >= 0.1:
            job.last_progress = now
            message = p.encode(p.PROGRESS, job.state.req, 0.95 * done / max(total, 1))
            with self.lock:
                job.state.latest = message
            self._send(message, job.state.client)

    def _write(self, job: Job, rendered: Rendered) -> Path:
        """Write the render atomically: a temporary file in the hidden .tmp folder, then a rename into place."""
        from .render import write_audio

        name = job.state.header["file_name"]
        if not name:
            with self.lock:
                self._seq += 1
                seq = self._seq
            slug = re.sub(r"[^A-Za-z0-9_-]+", "_", job.clip_id)[:60].strip("_") or "clip"
            name = f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{self.engine_id}-{seq}.wav"
        final = self.render_dir / name
        temporary = self.render_dir / TMP_DIR / f"{self.engine_id}-{secrets.token_hex(4)}-{name}"
        bits = "float" if final.suffix == ".wav" else "24"
        previous, signature = self.last_files.get(job.clip_id, (None, None))
        try:
            if not (rendered.changed and previous and final.suffix == ".wav" and _signature(previous) == signature
                    and _patch_wav(previous, temporary, rendered.audio, *rendered.changed)):
                write_audio(temporary, rendered.audio, rendered.sample_rate, bits)
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.last_files[job.clip_id] = (final, _signature(final))
        return final

    def _clean_renders(self) -> None:
        """Delete renders older than keep_hours and temporary files left by a killed engine."""
        self._last_clean = time.monotonic()
        now = time.time()
        removed = 0
        for path, max_age in [(q, self.config.keep_hours * 3600) for q in self.render_dir.iterdir()] + \
                             [(q, 60.0) for q in (self.render_dir / TMP_DIR).iterdir()]:
            try:
                if path.is_file() and path.suffix in (".wav", ".flac", ".part") and now - path.stat().st_mtime > max_age:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        if removed:
            log.info("removed %d old render file(s)", removed)


def _release_memory() -> None:
    """Give the heap's free pages back to the system after a render (glibc keeps them otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def _signature(path: Path) -> tuple[int, int] | None:
    """(size, modification time) of a file, None if it is gone: tells whether someone changed it since."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _patch_wav(previous: Path, target: Path, audio, start: int, stop: int) -> bool:
    """Write `target` as a copy of the float32 WAV `previous` with samples [start, stop) replaced from `audio`: the
    same bytes as writing `audio` in full when `previous` holds the last render, at the cost of a file copy. False
    (nothing written) when `previous` is not a mono float32 WAV of audio's length."""
    import struct

    import numpy as np

    try:
        with open(previous, "rb") as handle:
            head = handle.read(4096)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        position, data_at, is_float = 12, None, False
        while position + 8 <= len(head):
            chunk, size = head[position:position + 4], struct.unpack_from("<I", head, position + 4)[0]
            if chunk == b"fmt ":
                fmt, channels, _, _, _, bits = struct.unpack_from("<HHIIHH", head, position + 8)
                is_float = fmt == 3 and channels == 1 and bits == 32
            if chunk == b"data":
                data_at = position + 8 if size == audio.shape[0] * 4 else None
                break
            position += 8 + size + (size & 1)
        if not is_float or data_at is None or previous.stat().st_size < data_at + audio.shape[0] * 4:
            return False
        shutil.copyfile(previous, target)
        with open(target, "r+b") as handle:
            handle.seek(data_at + 4 * start)
            handle.write(np.ascontiguousarray(audio[start:stop], dtype="<f4").tobytes())
        return True
    except OSError:
        target.unlink(missing_ok=True)
        return False


HANDLERS = {
    p.HELLO: Service._hello, p.PING: Service._ping, p.PRESETS: Service._presets, p.LOAD: Service._load,
    p.RENDER: Service._render, p.NOTES: Service._notes, p.STATUS: Service._status, p.FETCH: Service._fetch,
    p.CANCEL: Service._cancel_request,
}


def serve(config: ServiceConfig, port_file: str | None = None) -> None:
    """Run the service in the foreground until SIGINT/SIGTERM; write the bound port to `port_file` when given."""
    service = Service(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    service.start()
    if port_file:
        tmp = Path(f"{port_file}.part")
        tmp.write_text(str(service.port))
        os.replace(tmp, port_file)
    print(f"engine listening on {config.host}:{service.port} (protocol {p.PROTOCOL_VERSION}); renders in "
          f"{service.render_dir}; Ctrl-C stops", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping")
        service.stop()
