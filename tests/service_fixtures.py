"""Helpers for the service tests: an engine service on an ephemeral port, a raw UDP peer (real sockets), notes and
render headers."""
import contextlib
import socket
import time

from daw_bridge import protocol as p
from daw_bridge.client import EngineClient
from engine.service import Service, ServiceConfig

FAST = p.Timing(resend=0.1, connect_timeout=3.0, status_after=0.5, lost_after=3.0)
WAIT = 20.0  # seconds any single awaited reply may take on a loaded machine before a test fails


@contextlib.contextmanager
def running_service(tmp_path, **options):
    service = Service(ServiceConfig(host="127.0.0.1", port=0, render_dir=tmp_path / "renders", **options)).start()
    try:
        yield service
    finally:
        service.stop()


def client_for(service, timing=FAST) -> EngineClient:
    return EngineClient("127.0.0.1", service.port, "test", timing=timing)


class Peer:
    """A bare UDP socket speaking the protocol by hand. Every wait has a deadline: `replies` fails with what it got
    when the awaited reply does not come; `quiet` listens for a fixed time (to check that nothing comes)."""

    def __init__(self, port: int):
        self.engine = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.engine)

    def request(self, address: str, *values, records=(), reply_port=None, wait: float = WAIT, until=None,
                count: int = 1) -> list:
        """Send a request, return its replies: until `until(reply)` holds for one, else the first `count`."""
        self.send(p.encode(address, *values, records=records, reply_port=reply_port))
        return self.replies(wait, until, count)

    def replies(self, wait: float = WAIT, until=None, count: int | None = 1) -> list:
        """Parsed replies until `until(reply)` holds for one of them, else until `count` came; an AssertionError
        naming what did come if that takes more than `wait` s."""
        out, deadline = [], time.monotonic() + wait
        while not ((until is not None and any(until(x) for x in out)) or (until is None and len(out) >= count)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {'awaited reply' if until else f'{count} replies'} within {wait:g} s; "
                                     f"got {[(r.address, r.fields) for r in out]}")
            out.extend(self._receive())
        return out

    def quiet(self, seconds: float = 0.5) -> list:
        """Everything that arrives within `seconds` (to check that nothing does)."""
        out, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            out.extend(self._receive())
        return out

    def _receive(self) -> list:
        try:
            data, _ = self.sock.recvfrom(65536)
        except socket.timeout:
            return []
        return [x for x in p.decode(data, p.REPLIES) if isinstance(x, p.Parsed)]

    def close(self) -> None:
        self.sock.close()


def wait_until(condition, what: str, timeout: float = WAIT, pump=None, step: float = 0.02):
    """Call `pump(step)` (or sleep) until `condition()` is true; an AssertionError saying `what` was awaited when
    it takes more than `timeout` s. Returns the condition's value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        if pump is not None:
            pump(step)
        else:
            time.sleep(step)


def until_state(client: EngineClient, session, states, timeout: float = WAIT) -> None:
    """Pump `client` until `session` is in one of `states` (a string or a tuple); fails at once if the request
    ends elsewhere, and after `timeout` s."""
    states = (states,) if isinstance(states, str) else tuple(states)

    def reached() -> bool:
        if session.state in states:
            return True
        if session.finished:
            raise AssertionError(f"request {session.req} ended {session.state} {session.error} before {states}")
        return False

    wait_until(reached, f"request {session.req} to reach {states}", timeout, client.pump)


def notes(n: int, step: float = 0.25, length: float = 0.2, prefix: str = "n") -> list[dict]:
    return [{"id": f"{prefix}{i}", "pitch": 55 + i % 24, "onset": i * step, "offset": i * step + length,
             "velocity": 40 + i % 80} for i in range(n)]


def errors(replies, code=None) -> list:
    return [r for r in replies if r.address == p.ERROR and (code is None or r.fields["code"] == code)]


def header(req, clip="c", preset="parametric", rate=16000, n_notes=2, n_chunks=1, length=0.0, seed=0, name=""):
    return p.encode(p.RENDER, req, clip, preset, rate, n_notes, n_chunks, length, seed, name)


NOTE = ("a", 60, 0.0, 0.5, 100) + (p.GENERATE,) * 6


def long_notes(seconds: float, prefix: str = "x") -> list[dict]:
    return notes(int(seconds / 0.5), step=0.5, length=0.45, prefix=prefix)
