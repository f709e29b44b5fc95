"""The script's side of the engine protocol: one non-blocking UDP socket and a `protocol.Bridge`, driven from the
tick. Nothing here waits: `receive` reads what has arrived, `send` writes what the requests want sent now (the
protocol re-sends anything lost or refused, and fails a request whose engine stays silent).
"""
from __future__ import annotations

import socket

from .vendor.daw_bridge import protocol  # the copy `python -m daw_bridge install ableton` puts next to the script

MAX_DATAGRAMS_PER_TICK = 512  # bounds one tick's work; the rest waits in the socket buffer for the next tick


class EngineLink:
    def __init__(self, host: str, port: int, timing: protocol.Timing, log):
        self.address = (host, port)
        self.log = log
        self.bridge = protocol.Bridge("Ableton Live DDSPInstrument", timing=timing)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(("127.0.0.1" if host in ("127.0.0.1", "localhost") else "", 0))

    def receive(self, now: float) -> None:
        """Feed every datagram waiting on the socket to the requests (their listeners run from here)."""
        for _ in range(MAX_DATAGRAMS_PER_TICK):
            try:
                data, _ = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except (ConnectionResetError, ConnectionRefusedError):
                continue  # an earlier datagram's "port unreachable" (Windows reports it here): the engine is down
            except OSError as error:
                self.log("engine socket: %s" % error)
                return
            self.bridge.handle_datagram(data, now)

    def send(self, now: float) -> None:
        for datagram in self.bridge.poll(now):
            try:
                self.sock.sendto(datagram, self.address)
            except (BlockingIOError, InterruptedError):
                return  # socket buffer full: the protocol re-sends next time
            except OSError:
                continue  # e.g. unreachable: the request fails with no_engine after connect_timeout

    def close(self) -> None:
        for request in list(self.bridge.open.values()):
            if isinstance(request, protocol.RenderSession):
                try:
                    self.sock.sendto(request.cancel_datagram(), self.address)
                except OSError:
                    pass
        self.sock.close()
