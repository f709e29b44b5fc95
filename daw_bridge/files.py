"""Files others see are always complete: write to a temporary file in the same folder, then rename it into place.
Standard library only: the engine and the DAW bridge both use it."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


@contextmanager
def atomic_file(path: str | Path, suffix: str = ".part") -> Iterator[str]:
    """A temporary path beside `path` to write; renamed onto `path` when the `with` block ends without an error,
    removed (and the error raised) when it ends with one. `suffix` ends the temporary name (for writers that infer a
    format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stale_parts(path: str | Path, suffix: str = ".part") -> list[Path]:
    """Temporary files `atomic_file(path, suffix)` left behind when its process was killed (mkstemp names them
    .<stem>.<8 random characters><suffix>)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.stem}.{'?' * 8}{suffix}")) if path.parent.is_dir() else []


def write_atomic(path: str | Path, save: Callable[[str], None], suffix: str = ".part") -> Path:
    """Call `save(tmp)` on a temporary path beside `path`, then rename it onto `path` (`atomic_file`)."""
    with atomic_file(path, suffix) as tmp:
        save(tmp)
    return Path(path)


def write_json_atomic(path: str | Path, document: dict) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(document, indent=1)))


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))
