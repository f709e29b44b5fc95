"""Bring a built dataset up to date without re-rendering it (`python -m engine.training.refresh DATASET`).

For datasets built before a change to the targets or to how engine.expression measures a control: the audio stays;
the amplitude targets get their legato joins bridged (engine.dataset.bridged_targets, as a new build makes them), and
the `controls` array and meta.json's coverage are recomputed from the targets. Running it twice changes nothing more.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..expression import extract_controls
from .dataset import (ARRAY_KEYS, Builder, DatasetError, bridged_targets, load_dataset, load_piece,
                      notes_from_array, piece_params)


def refresh_controls(folder: str | Path) -> int:
    """Recompute the controls of every piece in the dataset `folder` and its coverage; -> pieces rewritten."""
    folder = Path(folder)
    meta, _ = load_dataset(folder)  # a clear DatasetError for a folder that is not a complete dataset
    try:
        builder = Builder(folder, json.loads((folder / "build.json").read_text()))
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read {folder / 'build.json'}: {error}") from None
    infos = meta["pieces"]
    for piece_id, info in infos.items():
        piece = load_piece(folder, piece_id)
        notes = notes_from_array(piece["notes"])
        params = bridged_targets(piece_params(piece, meta["max_hz"]), notes)
        arrays = {k: piece[k].numpy() for k in ARRAY_KEYS}
        arrays["amplitude"] = params.amplitude.numpy().astype(np.float32)
        arrays["controls"] = extract_controls(params, notes).numpy().astype(np.float32)
        builder.write(piece_id, arrays, info)
    kept = {k: v for k, v in meta.items() if k not in ("coverage", "coverage_test", "notes", "seconds", "measured",
                                                        "pieces")}
    builder.finish(kept, infos)
    return len(infos)


def main(paths: list[str]) -> int:
    for path in paths:
        try:
            print(f"{path}: {refresh_controls(path)} pieces refreshed")
        except DatasetError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
