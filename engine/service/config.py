"""The engine service's settings, and the shapes its parts share: a client's address and the two reply functions
the server hands them (so that no part needs the socket)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from daw_bridge import protocol as p

Client = tuple[str, int]  # where a client's replies go: its address, or the port it asked replies to be sent to
Send = Callable[[bytes, Client], None]  # send one datagram to a client
SendError = Callable[[Client, int, str, str], None]  # send (and log) an error reply: client, req, code, message


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
