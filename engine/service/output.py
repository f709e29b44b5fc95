"""The render folder: rendered clips written into it atomically (a temporary file in its hidden .tmp folder, then a
rename), by patching a copy of the clip's last file when an incremental render changed only part of it; and the
removal of old renders and of temporary files a killed engine left behind."""
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
TMP_MAX_AGE = 60.0  # seconds after which a temporary file is a leftover


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

    def prepare(self) -> None:
        """Create the folder and its temporary folder; delete what has grown old."""
        (self.path / TMP_DIR).mkdir(parents=True, exist_ok=True)
        self.clean()

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
        """Delete renders older than keep_hours and temporary files left by a killed engine."""
        self.last_clean = time.monotonic()
        now = time.time()
        removed = 0
        for path, max_age in [(q, self.config.keep_hours * 3600) for q in self.path.iterdir()] + \
                             [(q, TMP_MAX_AGE) for q in (self.path / TMP_DIR).iterdir()]:
            try:
                if path.is_file() and path.suffix in (".wav", ".flac", ".part") and now - path.stat().st_mtime > max_age:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        if removed:
            log.info("removed %d old render file(s)", removed)


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
