"""Helpers for the service tests: an engine service on an ephemeral port, a raw UDP peer (real sockets), notes and
render headers."""
import contextlib
import socket
import time

from daw_bridge import protocol as p
from daw_bridge.client import EngineClient
from engine.service import Service, ServiceConfig

FAST = p.Timing(resend=0.1, connect_timeout=3.0, status_after=0.5, lost_after=3.0)


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
    """A bare UDP socket speaking the protocol by hand."""

    def __init__(self, port: int):
        self.engine = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.engine)

    def request(self, address: str, *values, records=(), wait: float = 2.0, until=None) -> list:
        self.send(p.encode(address, *values, records=records))
        return self.replies(wait, until)

    def replies(self, wait: float = 2.0, until=None, quiet: float = 0.3) -> list:
        """Parsed replies until `until(reply)` is true for one, or nothing came for `quiet` s (max `wait` s)."""
        out, deadline, last = [], time.monotonic() + wait, time.monotonic()
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                if until is None and time.monotonic() - last > quiet:
                    break
                continue
            last = time.monotonic()
            out.extend(x for x in p.decode(data, p.REPLIES) if isinstance(x, p.Parsed))
            if until is not None and any(until(x) for x in out):
                break
        return out

    def close(self) -> None:
        self.sock.close()


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
