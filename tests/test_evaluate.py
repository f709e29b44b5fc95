"""The evaluation's measures, with known answers, and the docs table against the shipped presets' own metrics."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine.notes import CONTROL_NAMES
from engine.synthesis import ParametricInstrument
from engine.training.evaluate import (DOCS_TABLE, TABLE_END, TABLE_START, docs_row, fidelity_metrics,
                                      log_spectral_distance, reference_melody)

PRESETS = Path(__file__).resolve().parent.parent / "presets"


def test_log_spectral_distance_reads_a_level_change_in_db():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.1, 0.1, 16000).astype(np.float32)
    assert log_spectral_distance(x, x) == 0.0
    assert log_spectral_distance(2 * x, x) == pytest.approx(20 * np.log10(2), abs=0.01)  # 6.02 dB, not halved


class IgnoresBrightness:
    """A generator that does not honour brightness: the sweep must see it (it reports what it measures)."""

    def __init__(self):
        self.inner = ParametricInstrument(1.0 / np.arange(1, 61), None, -45.0, 8000.0)

    def generate(self, notes, controls, n_frames):
        controls = controls.clone()
        controls[:, 4] = 0.3
        return self.inner.generate(notes, controls, n_frames)


def test_fidelity_sweep_reports_what_it_measures():
    piece = {"notes": np.array([[60, 0.0, 0.8, 90]], dtype=np.float32),
             "controls": np.full((1, 6), 0.4, dtype=np.float32)}

    class Preset:
        synthesis = ParametricInstrument(1.0 / np.arange(1, 61), None, -45.0, 8000.0)

    honest = fidelity_metrics(Preset, [piece], 1)
    assert all(honest[name]["r_min"] > 0.95 for name in CONTROL_NAMES if name != "brightness")
    Preset.synthesis = IgnoresBrightness()
    deaf = fidelity_metrics(Preset, [piece], 1)
    assert deaf["brightness"]["r_min"] < 0.5 and deaf["volume"]["r_min"] > 0.95


def test_reference_melody_is_a_mezzo_forte_scale_in_range():
    notes = reference_melody([34, 72])
    assert len(notes) == 15 and {n.velocity for n in notes} == {80}
    assert all(34 <= n.pitch <= 72 for n in notes)
    assert all(a.offset == pytest.approx(b.onset) for a, b in zip(notes, notes[1:]))  # legato


def test_docs_table_is_what_the_presets_say():
    """Every neural preset's row in docs/presets.md is the row its own preset.json metrics make."""
    text = DOCS_TABLE.read_text()
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    checked = 0
    for meta_path in sorted(PRESETS.glob("*/preset.json")):
        document = json.loads(meta_path.read_text())
        if document.get("kind") == "neural" and "metrics" in document:
            assert docs_row(meta_path.parent.name, document) in table, meta_path.parent.name
            checked += 1
    assert checked == 6
