"""Files others see are always complete: write to a temporary file in the same folder, then rename it into place.
Standard library only: the engine and the DAW bridge both use it."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomic(path: str | Path, save: Callable[[str], None], suffix: str = ".part") -> Path:
    """Call `save(tmp)` on a temporary path beside `path`, then rename it onto `path`; on any failure the temporary
    file is removed and the error raised. `suffix` ends the temporary name (for writers that infer a format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, document: dict) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(document, indent=1)))


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))
