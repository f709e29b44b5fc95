"""Every neural preset shipped in presets/: loads by name, renders a phrase at 48 kHz that passes the listening
checks (twice, identically), and carries its metrics in preset.json."""
import json

import pytest

from engine.notes import CONTROL_NAMES, Clip
from engine.presets import BUILTIN_DIR
from engine.synthesis import midi_to_hz
from listening import assert_listenable

SHIPPED = sorted(p.parent.name for p in BUILTIN_DIR.glob("*/preset.json")
                 if json.loads(p.read_text()).get("kind") == "neural")


@pytest.mark.skipif(not SHIPPED, reason="no neural presets shipped yet")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset(name):
    from engine.presets import load_preset
    from engine.render import render_clip

    preset = load_preset(name)
    meta = preset.meta
    for key in ("instrument", "program", "pitch_range", "max_hz", "training_sample_rate", "version", "training"):
        assert key in meta, key
    metrics = meta["metrics"]
    assert {"spectral_distance_db", "baseline_spectral_distance_db", "improvement_over_baseline",
            "f0_error_cents_median", "loudness_error_db_median"} <= set(metrics["reconstruction"])
    assert set(CONTROL_NAMES) <= set(metrics["control_fidelity"])
    assert {"mse", "mse_training_mean"} <= set(metrics["expression"])
    assert (preset.path / meta["weights"]).stat().st_size < 8 * 2 ** 20

    lo, hi = meta["pitch_range"]
    pitches = [lo + (hi - lo) // 4, lo + (hi - lo) // 2, lo + (hi - lo) // 3]
    clip = Clip.from_data([{"pitch": p, "onset": 0.1 + 0.9 * i, "offset": 0.9 + 0.9 * i, "velocity": 90}
                           for i, p in enumerate(pitches)])
    a = render_clip(clip, preset, 48000).audio
    b = render_clip(clip, preset, 48000).audio
    assert a.tobytes() == b.tobytes()
    assert_listenable(a, 48000, [(0.25 + 0.9 * i, 0.85 + 0.9 * i, midi_to_hz(float(p))) for i, p in enumerate(pitches)])


def test_a_folder_in_the_working_directory_never_shadows_a_preset(tmp_path, monkeypatch):
    from engine.presets import find_preset, load_preset

    impostor = tmp_path / "parametric"
    impostor.mkdir()
    (impostor / "preset.json").write_text(json.dumps({"kind": "parametric", "description": "impostor"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DDSP_PRESETS_PATH", raising=False)
    assert find_preset("parametric") == BUILTIN_DIR / "parametric"
    assert load_preset("parametric").description != "impostor"
    assert find_preset("./parametric").resolve() == impostor.resolve()  # a path names a folder explicitly
    monkeypatch.setenv("DDSP_PRESETS_PATH", str(tmp_path))  # and so does the search path
    assert find_preset("parametric") == tmp_path / "parametric"
