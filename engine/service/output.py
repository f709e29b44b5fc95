"""The render folder: rendered clips written into it atomically (a temporary file in its hidden .tmp folder, then a
rename), by patching a copy of the clip's last file when an incremental render changed only part of it; and the
removal of old renders and of temporary files a killed engine left behind.

Several engines may share a render folder (the default one, different ports). Each holds an exclusive lock on
`.tmp/<engine id>.lock` while it runs and names its temporary files `<engine id>-...`: a temporary file whose
engine holds no lock (killed, or from an older version) is a leftover, removed at start-up and at every sweep,
whatever its age; those of running engines are left alone. Where file locks are unavailable, other engines'
temporary files are removed once they are TMP_MAX_AGE s old."""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
import time
from pathlib import Path

from ..incremental import Rendered
from .config import ServiceConfig, default_render_dir

log = logging.getLogger("engine.service")

TMP_DIR = ".tmp"
CLEAN_EVERY = 600.0  # seconds between two sweeps for old renders
TMP_MAX_AGE = 60.0  # seconds after which another engine's temporary file is a leftover (without file locks)
LOCK_SUFFIX = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; leftovers go by age
    fcntl = None


class RenderFolder:
    """The folder renders are written to, and the last file written for each clip (its signature tells whether
    someone changed it since, so whether an incremental render may patch a copy of it)."""

    def __init__(self, config: ServiceConfig, engine_id: str):
        self.config = config
        self.path = Path(config.render_dir or default_render_dir()).resolve()
        self.engine_id = engine_id
        self.last_files: dict[str, tuple[Path, tuple | None]] = {}  # clip id -> (last file, its _signature)
        self.last_clean = 0.0
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._lock_file = None  # open while the engine runs: the lock that says its temporary files are in use

    @property
    def tmp(self) -> Path:
        return self.path / TMP_DIR

    def prepare(self) -> None:
        """Create the folder and its temporary folder, take this engine's lock; delete old renders and leftovers."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            lock = self.tmp / f"{self.engine_id}{LOCK_SUFFIX}"
            while self._lock_file is None:
                handle = open(lock, "wb")
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                try:  # another engine's sweep may have removed the file between its creation and the lock
                    same = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    self._lock_file = handle
                else:
                    handle.close()
        self.clean()

    def close(self) -> None:
        """Release this engine's lock (its temporary files, if any were left, become leftovers)."""
        if self._lock_file is not None:
            (self.tmp / f"{self.engine_id}{LOCK_SUFFIX}").unlink(missing_ok=True)
            self._lock_file.close()
            self._lock_file = None

    def write(self, clip_id: str, file_name: str, rendered: Rendered) -> Path:
        """Write the render atomically under `file_name` (empty: a unique name made from the clip id)."""
        from ..render import write_audio

        name = file_name or self._unique_name(clip_id)
        final = self.path / name
        temporary = self.path / TMP_DIR / f"{self.engine_id}-{secrets.token_hex(4)}-{name}"
        bits = "float" if final.suffix == ".wav" else "24"
        previous, signature = self.last_files.get(clip_id, (None, None))
        try:
            if not (rendered.changed and previous and final.suffix == ".wav" and _signature(previous) == signature
                    and patch_wav(previous, temporary, rendered.audio, *rendered.changed)):
                write_audio(temporary, rendered.audio, rendered.sample_rate, bits)
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.last_files[clip_id] = (final, _signature(final))
        return final

    def forget(self, clip_id: str) -> None:
        """Forget the clip's last file (it no longer holds the clip's cached render): the next one is written whole."""
        self.last_files.pop(clip_id, None)

    def _unique_name(self, clip_id: str) -> str:
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", clip_id)[:60].strip("_") or "clip"
        return f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{self.engine_id}-{seq}.wav"

    def clean_if_due(self, now: float) -> None:
        """`clean()` when the last sweep is more than CLEAN_EVERY s old (`now`: time.monotonic())."""
        if now - self.last_clean > CLEAN_EVERY:
            self.clean()

    def clean(self) -> None:
        """Delete renders older than keep_hours and temporary files no running engine is writing."""
        self.last_clean = time.monotonic()
        now = time.time()
        removed = 0
        for path in self.path.iterdir():
            try:
                if path.is_file() and path.suffix in (".wav", ".flac", ".part") and \
                        now - path.stat().st_mtime > self.config.keep_hours * 3600:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        left = self._remove_leftovers(now)
        if removed or left:
            log.info("removed %d old render file(s) and %d leftover temporary file(s)", removed, left)

    def _remove_leftovers(self, now: float) -> int:
        """Delete the temporary files (and stale locks) of engines that are not running; returns how many."""
        running, removed = {self.engine_id}, 0
        entries = list(self.tmp.iterdir())
        for path in entries:
            if path.name.endswith(LOCK_SUFFIX) and path.name != f"{self.engine_id}{LOCK_SUFFIX}" and fcntl:
                if _held(path):
                    running.add(path.name[:-len(LOCK_SUFFIX)])
                else:
                    path.unlink(missing_ok=True)
        for path in entries:
            if path.name.endswith(LOCK_SUFFIX):
                continue
            owner = path.name.lstrip(".").split("-", 1)[0]  # write_audio's own temporary name starts with a dot
            try:
                if owner in running or (fcntl is None and now - path.stat().st_mtime <= TMP_MAX_AGE):
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
            except OSError:
                continue
        return removed


def _held(lock: Path) -> bool:
    """Whether a running engine holds this lock file (trying to take it answers; taken, it is released at once)."""
    try:
        with open(lock, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def _signature(path: Path) -> tuple[int, int] | None:
    """(size, modification time) of a file, None if it is gone: tells whether someone changed it since."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def patch_wav(previous: Path, target: Path, audio, start: int, stop: int) -> bool:
    """Write `target` as a copy of the float32 WAV `previous` with samples [start, stop) replaced from `audio`: the
    same bytes as writing `audio` in full when `previous` holds the last render, at the cost of a file copy. False
    (nothing written) when `previous` is not a mono float32 WAV of audio's length, or carries a PEAK chunk (it
    would go stale: engine.render.write_audio writes none)."""
    import struct

    import numpy as np

    from ..render import wav_chunks

    try:
        with open(previous, "rb") as handle:
            head = handle.read(4096)
        data_at, is_float = None, False
        for chunk, offset, size in wav_chunks(head):
            if chunk == b"fmt " and offset + 16 <= len(head):
                fmt, channels, _, _, _, bits = struct.unpack_from("<HHIIHH", head, offset)
                is_float = fmt == 3 and channels == 1 and bits == 32
            elif chunk == b"PEAK":
                return False
            elif chunk == b"data":
                data_at = offset if size == audio.shape[0] * 4 else None
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
