"""The engine service's settings, and the shapes its parts share: who sent a datagram and where its replies go, and
the two reply functions the server hands the parts (so that no part needs the socket)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

from daw_bridge import protocol as p

Client = tuple[str, int]  # where a client's replies go: its address, or the port it asked replies to be sent to
Send = Callable[[bytes, Client], None]  # send one datagram to a client
SendError = Callable[[Client, int, str, str], None]  # send (and log) an error reply: client, req, code, message


class Sender(NamedTuple):
    """Who sent a request, and where its replies go.

    `owner` is what the sender's requests are kept under: the datagram's own address (host, port) when it names
    no reply port (or its own port), so that no other socket can reach those requests; (host, reply port) in a
    separate namespace when it names another port (peers such as oscsend, which send each message from a new
    port: anyone on that host naming the same reply port shares those requests)."""
    source: Client  # the datagram's address
    reply: Client  # where replies go
    owner: tuple[str, int, bool]  # (host, port, named by a reply port)

    @classmethod
    def of(cls, source: Client, reply_port: int | None) -> "Sender":
        if reply_port is None or reply_port == source[1]:
            return cls(source, source, (source[0], source[1], False))
        return cls(source, (source[0], reply_port), (source[0], reply_port, True))


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
    max_uploads: int = 64  # uploads open at once per client (sender address)
    max_uploads_total: int = 1024  # uploads open at once from all clients together
    upload_timeout: float = 30.0  # seconds without a new chunk before an upload expires
    result_ttl: float = 600.0  # seconds a finished request stays answerable (status, fetch)
    keep_hours: float = 72.0  # renders older than this are deleted
    cache_mb: int = 256  # incremental-render state in memory (parameters and mixes are on disk: near nothing)
    cache_disk_mb: int = 8192  # the cached clips' mixes and voices' parameters (3-minute 100-harmonic voice: 30 MB),
    # on disk in the render folder's temporary folder
    incremental: bool = True
    preload: tuple[str, ...] = ()
