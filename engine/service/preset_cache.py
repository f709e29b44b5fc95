"""The presets the service has loaded: each loaded once, on first use (or on a client's load request, in a thread
of its own), and kept for every later render."""
from __future__ import annotations

import logging
import re
import threading

from daw_bridge import protocol as p

from ..presets import Preset, PresetError, find_preset, load_preset
from .config import Client, Send, SendError

log = logging.getLogger("engine.service")

PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class PresetCache:
    """Loaded presets by name (`name in cache` tells whether one is loaded); `send` and `error` reply to the
    clients that asked for a load."""

    def __init__(self, send: Send, error: SendError):
        self.send, self.error = send, error
        self.loaded: dict[str, Preset] = {}
        self.waiting: dict[str, list[tuple[Client, int]]] = {}  # preset -> (client, req) waiting for its load
        self._load_lock = threading.Lock()  # one load at a time
        self._waiting_lock = threading.Lock()

    def __contains__(self, name: str) -> bool:
        return name in self.loaded

    def get(self, name: str) -> Preset:
        """The preset, loaded first if it is not yet (PresetError when it cannot be)."""
        with self._load_lock:
            preset = self.loaded.get(name)
            if preset is None:
                preset = self.loaded[name] = load_preset(name)
                log.info("loaded preset %s (%s)", name, preset.kind)
            return preset

    def check(self, name: str, req: int) -> str:
        """`name` if it names a preset, loaded or not; an unknown_preset ProtocolError if not."""
        if not PRESET_NAME.fullmatch(name):
            raise p.ProtocolError(p.UNKNOWN_PRESET, f"preset name {name[:80]!r} is not a preset name", req)
        if name not in self.loaded:
            try:
                find_preset(name)
            except PresetError as error:
                raise p.ProtocolError(p.UNKNOWN_PRESET, str(error), req) from None
        return name

    def load_for(self, client: Client, req: int, name: str) -> None:
        """Reply `loaded` once the preset is loaded: at once if it is, else after loading it in a thread (a neural
        preset takes a while); repeated requests while it loads just wait for it."""
        with self._waiting_lock:
            if name in self.loaded:
                self.send(p.encode(p.LOADED, req, name), client)
                return
            waiting = self.waiting.setdefault(name, [])
            waiting.append((client, req))
            if len(waiting) > 1:
                return
        threading.Thread(target=self._load, args=(name,), name=f"load-{name}", daemon=True).start()

    def _load(self, name: str) -> None:
        """(its own thread) Load a preset and answer everyone waiting for it."""
        try:
            self.get(name)
            error = None
        except PresetError as failure:
            error = str(failure)
        with self._waiting_lock:
            waiters = self.waiting.pop(name, [])
        for who, req in set(waiters):
            if error:
                self.error(who, req, p.UNKNOWN_PRESET, error)
            else:
                self.send(p.encode(p.LOADED, req, name), who)
