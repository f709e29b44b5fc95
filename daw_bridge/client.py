"""A blocking client for the engine, on top of daw_bridge.protocol: for CLIs, helper processes and tests.

    with EngineClient() as engine:
        result = engine.render("item-1", "flute", notes, progress=lambda fraction, state: print(fraction))
        print(result.path, result.controls)

DAW scripts that must not block (REAPER `defer`, Live's tick) use `protocol.Bridge` directly; see
docs/protocol.md.
"""
from __future__ import annotations

import dataclasses
import select
import socket
import time
from typing import Callable, Sequence

from . import protocol as p

RETRYABLE = (p.NO_ENGINE, p.ENGINE_LOST, p.UNKNOWN_REQUEST, p.EXPIRED, p.BUSY)


class EngineError(Exception):
    """A request that failed: `code` is a protocol error code (docs/protocol.md), the message says why."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class EngineClient:
    """One UDP socket to one engine. `timing` tunes re-sends and timeouts (protocol.Timing)."""

    def __init__(self, host: str = p.DEFAULT_HOST, port: int = p.DEFAULT_PORT, client_name: str = "daw_bridge",
                 timing: p.Timing | None = None):
        self.address = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0", 0))
        self.sock.setblocking(False)
        self.bridge = p.Bridge(client_name, timing=timing)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------- the poll loop

    def pump(self, wait: float = 0.0) -> None:
        """One turn of the poll loop: wait up to `wait` s for datagrams, feed them, send what is due."""
        if wait > 0:
            select.select([self.sock], [], [], wait)
        now = time.monotonic()
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # an ICMP "port unreachable" from an earlier send (Windows reports it here)
                continue
            self.bridge.handle_datagram(data, now)
        for data in self.bridge.poll(now):
            try:
                self.sock.sendto(data, self.address)
            except OSError:
                pass  # the engine is not there (yet): the session's timeouts decide

    def wait(self, request: p.Request, timeout: float | None = None) -> p.Request:
        """Pump until the request finishes; raises EngineError (TIMEOUT after `timeout` s, else its error)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.pump()
        while not request.finished:
            if deadline is not None and time.monotonic() > deadline:
                if isinstance(request, p.RenderSession):
                    self.bridge.cancel(request)
                    self.pump()
                self.bridge.open.pop(request.req, None)
                raise EngineError(p.TIMEOUT, f"no result within {timeout:g} s")
            self.pump(0.02)
        if request.error:
            raise EngineError(*request.error)
        return request

    # -------------------------------------------------------------------------------------------- requests

    def hello(self, timeout: float | None = None) -> dict:
        """Handshake: protocol version, engine version and id."""
        return self.wait(self.bridge.hello(), timeout).result

    def ping(self, timeout: float | None = None) -> dict:
        return self.wait(self.bridge.ping(), timeout).result

    def presets(self, timeout: float | None = None) -> list[dict]:
        return self.wait(self.bridge.presets(), timeout).result

    def load(self, preset: str, timeout: float | None = 300.0) -> None:
        """Have the engine load a preset now (renders load on demand anyway)."""
        query = self.bridge.load(preset)
        query.timing = dataclasses.replace(query.timing, connect_timeout=timeout or 1e9)  # loading can take a while
        self.wait(query, timeout)

    def start_render(self, clip_id: str, preset: str, notes: Sequence[dict], sample_rate: int = 48000,
                     length: float = 0.0, seed: int = 0, file_name: str = "",
                     progress: Callable[[float, str], None] | None = None) -> p.RenderSession:
        """Start a render without waiting; drive it with `pump()` or `wait()`."""
        def listener(session: p.RenderSession, event: str) -> None:
            if progress and event in ("queued", "progress", "fetching", "done"):
                progress(session.progress, session.state)

        return self.bridge.render(clip_id, preset, notes, sample_rate, length, seed, file_name, listener)

    def render(self, clip_id: str, preset: str, notes: Sequence[dict], sample_rate: int = 48000,
               length: float = 0.0, seed: int = 0, file_name: str = "",
               progress: Callable[[float, str], None] | None = None, timeout: float | None = None,
               retries: int = 0, on_retry: Callable[[EngineError], None] | None = None) -> p.RenderOutcome:
        """Render a clip and wait for the file and the per-note controls.

        notes: dicts {id, pitch, onset, offset, velocity?, controls?, curves?} (seconds from the clip start; curves
        as in daw_bridge.curves, sent as /ddsp/curves chunks). On a lost or
        restarted engine (and on `busy`/`expired`) the whole request is sent again up to `retries` times, after
        calling `on_retry(error)`; other errors raise EngineError at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for attempt in range(retries + 1):
            session = self.start_render(clip_id, preset, notes, sample_rate, length, seed, file_name, progress)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return self.wait(session, left).result
            except EngineError as error:
                if error.code not in RETRYABLE or attempt == retries:
                    raise
                if on_retry:
                    on_retry(error)
                if error.code == p.BUSY:
                    time.sleep(0.5)
        raise AssertionError("unreachable")
