"""Re-read every piece's six controls from its stored targets (`python -m engine.training.refresh DATASET`).

For datasets built before a change to how engine.expression measures a control (e.g. brightness made independent of
the number of harmonics): the audio and targets stay, the `controls` array and meta.json's coverage are recomputed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..expression import extract_controls
from .dataset import ARRAY_KEYS, Builder, load_piece, notes_from_array, piece_params


def refresh_controls(folder: str | Path) -> int:
    """Recompute the controls of every piece in the dataset `folder` and its coverage; -> pieces rewritten."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    builder = Builder(folder, json.loads((folder / "build.json").read_text()))
    infos = meta["pieces"]
    for piece_id, info in infos.items():
        piece = load_piece(folder, piece_id)
        controls = extract_controls(piece_params(piece, meta["max_hz"]), notes_from_array(piece["notes"]))
        arrays = {k: piece[k].numpy() for k in ARRAY_KEYS}
        arrays["controls"] = controls.numpy().astype(np.float32)
        builder.write(piece_id, arrays, info)
    kept = {k: v for k, v in meta.items() if k not in ("coverage", "coverage_test", "notes", "seconds", "measured",
                                                        "pieces")}
    builder.finish(kept, infos)
    return len(infos)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"{path}: {refresh_controls(path)} pieces refreshed")
