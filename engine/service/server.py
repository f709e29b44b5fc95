"""The engine service's server: the UDP socket, the network thread that reads datagrams and hands each request to
the handler for its OSC address, the replies, the service's life cycle (`Service`) and `serve()`.

One network thread answers everything it can at once (handshake, ping, preset list, chunk acks, status, control
fetches) and queues complete render requests (uploads.py); worker threads render them (jobs.py) and write the
files atomically into the render folder (output.py). No request, however malformed, stops the service: each gets
an error reply and is forgotten; error replies are logged, repeated ones summarised (`ErrorLog`).
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from pathlib import Path

from daw_bridge import protocol as p

from .. import __version__
from ..presets import list_presets
from .config import Client, Sender, ServiceConfig
from .jobs import JobQueue
from .output import RenderFolder
from .preset_cache import PresetCache
from .uploads import ForeignRequest, Uploads

log = logging.getLogger("engine.service")

HOUSEKEEPING_EVERY = 1.0  # seconds
ERROR_LOG_BURST = 10  # error replies of one code logged one by one in each period; the rest summed up
ERROR_LOG_PERIOD = 60.0  # seconds


class ErrorLog:
    """Logs error replies without letting a flood of bad datagrams flood the log: per error code, the first
    ERROR_LOG_BURST of each ERROR_LOG_PERIOD s one line each, then one line per period saying how many more there
    were. Thread-safe."""

    def __init__(self, burst: int = ERROR_LOG_BURST, period: float = ERROR_LOG_PERIOD):
        self.burst, self.period = burst, period
        self.windows: dict[str, list] = {}  # code -> [window start, logged, suppressed, last message]
        self._lock = threading.Lock()

    def error(self, code: str, text: str, now: float) -> None:
        with self._lock:
            window = self.windows.get(code)
            if window is None or now - window[0] >= self.period:
                self._summarise(code)
                window = self.windows[code] = [now, 0, 0, ""]
            if window[1] < self.burst:
                window[1] += 1
                log.info("%s", text)
            else:
                window[2] += 1
                window[3] = text

    def flush(self, now: float | None = None) -> None:
        """Summarise the windows that have ended (all of them when `now` is None)."""
        with self._lock:
            for code, window in list(self.windows.items()):
                if now is None or now - window[0] >= self.period:
                    self._summarise(code)
                    del self.windows[code]

    def _summarise(self, code: str) -> None:
        window = self.windows.get(code)
        if window and window[2]:
            log.info("%d more %s error replies not logged in the last %.0f s (the last: %s)", window[2], code,
                     self.period, window[3])


class Service:
    """Start with `start()` (threads; returns once bound: `port` is set), stop with `stop()`. `serve()` runs one
    in the foreground until SIGINT/SIGTERM."""

    def __init__(self, config: ServiceConfig | None = None):
        self.config = config or ServiceConfig()
        self.engine_id = secrets.token_hex(4)
        self.folder = RenderFolder(self.config, self.engine_id)
        self.render_dir = self.folder.path
        self.lock = threading.RLock()  # the requests and the job queue: a request moves from one to the other
        self.stopping = threading.Event()
        self.presets = PresetCache(self._send, self._error)
        self.uploads = Uploads(self.config, self.lock, self.stopping, self.presets, self._send, self._error)
        self.jobs = JobQueue(self.config, self.lock, self.stopping, self.presets, self.folder, self._send)
        self.sock: socket.socket | None = None
        self.threads: list[threading.Thread] = []
        self.started = time.monotonic()
        self._send_lock = threading.Lock()
        self._last_housekeeping = 0.0
        self.error_log = ErrorLog()

    # ------------------------------------------------------------------------------------------------ life cycle

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self) -> "Service":
        self.folder.prepare()
        import torch

        from ..stream import return_freed_arrays

        torch.set_num_threads(max(1, self.config.threads))
        return_freed_arrays()
        for name in self.config.preload:
            self.presets.get(name)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2 ** 20)
        self.sock.bind((self.config.host, self.config.port))
        self.sock.settimeout(0.2)
        self.threads = [threading.Thread(target=self._network_loop, name="osc", daemon=True)]
        self.threads += [threading.Thread(target=self.jobs.worker, name=f"render-{i}", daemon=True)
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
        self.jobs.shut_down()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.sock:
            self.sock.close()
        self.error_log.flush()
        self.folder.close()
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

    def _send(self, data: bytes, client: Client) -> None:
        try:
            with self._send_lock:
                self.sock.sendto(data, client)
        except OSError as error:
            log.debug("cannot reply to %s: %s", client, error)

    def _error(self, client: Client, req: int, code: str, message: str) -> None:
        self.error_log.error(code, f"error to {client[0]}:{client[1]} req {req}: {code}: {message}", time.monotonic())
        self._send(p.encode(p.ERROR, req, code, message[:1000]), client)

    def _datagram(self, data: bytes, address: Client) -> None:
        for item in p.decode(data, p.REQUESTS):
            if isinstance(item, p.ProtocolError):
                self._error((address[0], item.reply_port or address[1]), item.req, item.code, str(item))
                continue
            sender = Sender.of(address, item.reply_port)
            try:
                HANDLERS[item.address](self, sender, item)
            except ForeignRequest as error:  # someone else's request: answer here, never at its owner's port
                self._error(sender.source, error.req or item.req, error.code, str(error))
            except p.ProtocolError as error:
                self._error(sender.reply, error.req or item.req, error.code, str(error))
            except Exception as error:  # a bug must not stop the service
                log.error("internal error on %s: %s", item.address, traceback.format_exc())
                self._error(sender.reply, item.req, p.INTERNAL, f"internal error: {error}")

    def _housekeeping(self) -> None:
        """Once a second: expire stalled uploads and old results; every 10 minutes: delete old renders."""
        now = time.monotonic()
        if now - self._last_housekeeping < HOUSEKEEPING_EVERY:
            return
        self._last_housekeeping = now
        self.uploads.expire(now)
        self.folder.clean_if_due(now)
        self.error_log.flush(now)

    # ------------------------------------------------------------------------------------------------ handlers

    def _hello(self, sender: Sender, msg: p.Parsed) -> None:
        if msg.fields["protocol"] != p.PROTOCOL_VERSION:
            raise p.ProtocolError(p.VERSION, f"the engine speaks protocol {p.PROTOCOL_VERSION}, the client "
                                             f"{msg.fields['protocol']}", msg.req)
        log.info("hello from %s:%d (%s)", sender.reply[0], sender.reply[1], msg.fields["client"][:80])
        self._send(p.encode(p.WELCOME, msg.req, p.PROTOCOL_VERSION, __version__, self.engine_id, p.MAX_DATAGRAM),
                   sender.reply)

    def _ping(self, sender: Sender, msg: p.Parsed) -> None:
        queued, running = self.jobs.counts()
        self._send(p.encode(p.PONG, msg.req, self.engine_id, queued, running, time.monotonic() - self.started),
                   sender.reply)

    def _presets(self, sender: Sender, msg: p.Parsed) -> None:
        found = list_presets()
        self._send(p.encode(p.PRESET_COUNT, msg.req, len(found)), sender.reply)
        for index, info in enumerate(found):
            program = info.get("program")
            self._send(p.encode(p.PRESET, msg.req, index, info["name"], str(info["kind"]),
                                str(info.get("instrument") or ""), -1 if program is None else int(program),
                                int(info["name"] in self.presets), str(info["description"])[:500]), sender.reply)

    def _load(self, sender: Sender, msg: p.Parsed) -> None:
        self.presets.load_for(sender.reply, msg.req, self.presets.check(msg.fields["preset"], msg.req))

    def _render(self, sender: Sender, msg: p.Parsed) -> None:
        self.uploads.open(sender, msg.req, msg.fields)

    def _notes(self, sender: Sender, msg: p.Parsed) -> None:
        """A chunk of notes; the last one missing turns the upload into a clip and queues its render."""
        state = self.uploads.add_chunk(sender, msg.req, msg.fields["chunk"], msg.records)
        if state is None:
            return
        clip = self.uploads.assemble(state)
        if clip is not None:
            self.jobs.submit(state, clip)

    def _curves(self, sender: Sender, msg: p.Parsed) -> None:
        """A chunk of one note's curve points; like a notes chunk, the last one missing queues the render."""
        state = self.uploads.add_chunk(sender, msg.req, msg.fields["chunk"], msg.records,
                                       curve=(msg.fields["id"], msg.fields["curve"]))
        if state is None:
            return
        clip = self.uploads.assemble(state)
        if clip is not None:
            self.jobs.submit(state, clip)

    def _status(self, sender: Sender, msg: p.Parsed) -> None:
        self._send(self.uploads.latest(sender, msg.req), sender.reply)

    def _fetch(self, sender: Sender, msg: p.Parsed) -> None:
        for data in self.uploads.controls(sender, msg.req, msg.fields["first"], msg.fields["count"]):
            self._send(data, sender.reply)

    def _cancel(self, sender: Sender, msg: p.Parsed) -> None:
        with self.lock:
            state = self.uploads.known(sender, msg.req)
            if state.status == "receiving":
                self.uploads.cancel(state)
            elif state.status in ("queued", "rendering"):
                self.jobs.cancel(state.job, p.CANCELLED, "cancelled by the client")
            else:
                self._send(state.latest, state.client)  # finished: nothing to cancel


HANDLERS = {
    p.HELLO: Service._hello, p.PING: Service._ping, p.PRESETS: Service._presets, p.LOAD: Service._load,
    p.RENDER: Service._render, p.NOTES: Service._notes, p.CURVES: Service._curves, p.STATUS: Service._status,
    p.FETCH: Service._fetch, p.CANCEL: Service._cancel,
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
