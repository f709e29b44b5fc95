"""The CLI as a user runs it: a subprocess, real files, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from conftest import ROOT, write_midi

EXAMPLE = ROOT / "examples" / "bach_bwv66_6.mid"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


def test_render_example_with_stems_and_expression_file(tmp_path):
    out, stems, expression = tmp_path / "out.wav", tmp_path / "stems", tmp_path / "e.json"
    r = run("render", EXAMPLE, "-o", out, "--sample-rate", 44100, "--stems", stems, "--expression", expression,
            "--preset", "parametric")
    assert r.returncode == 0, r.stderr
    info = sf.info(str(out))
    assert info.samplerate == 44100 and info.duration > 27
    assert len(list(stems.iterdir())) == 4
    doc = json.loads(expression.read_text())
    assert len(doc["notes"]) == 165 and set(doc["notes"][0]["controls"]) >= {"volume", "vibrato"}
    # Edit one note, render again: the file is read, the audio changes.
    doc["notes"][0]["controls"]["volume"] = 0.2
    expression.write_text(json.dumps(doc))
    out2 = tmp_path / "out2.wav"
    assert run("render", EXAMPLE, "-o", out2, "--sample-rate", 44100, "--expression", expression,
               "--preset", "parametric", "-q").returncode == 0
    assert out.read_bytes() != out2.read_bytes()


def test_track_preset_mapping_and_bad_mapping(tmp_path):
    midi = write_midi(tmp_path / "a.mid", [(40, [(67, 0, 1, 100)]), (42, [(48, 0, 1, 100)])])
    r = run("render", midi, "-o", tmp_path / "a.flac", "--track-preset", "0=parametric", "--track-preset",
            "1=parametric", "--bits", "16")
    assert r.returncode == 0, r.stderr and sf.info(str(tmp_path / "a.flac")).subtype == "PCM_16"
    r = run("render", midi, "-o", tmp_path / "b.wav", "--track-preset", "oops")
    assert r.returncode == 1 and r.stderr.strip() == "error: --track-preset wants TRACK=NAME, got 'oops'"


def test_presets_lists_the_baseline():
    r = run("presets")
    assert r.returncode == 0 and "parametric" in r.stdout and "Not the neural instrument" in r.stdout


def test_inspect_prints_notes_and_plots(tmp_path):
    r = run("inspect", EXAMPLE, "--notes", "--plot", tmp_path / "p.png", "--preset", "parametric")
    assert r.returncode == 0, r.stderr
    assert "track 'flute': 37 notes, 1 voice(s)" in r.stdout and "t0n0" in r.stdout
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_are_one_line_without_traceback(tmp_path):
    junk = tmp_path / "junk.mid"
    junk.write_text("junk")
    empty = write_midi(tmp_path / "empty.mid", [(0, [])])
    cases = [
        (["render", tmp_path / "missing.mid", "-o", tmp_path / "x.wav"], "no such MIDI file"),
        (["render", junk, "-o", tmp_path / "x.wav"], "cannot read MIDI file"),
        (["render", empty, "-o", tmp_path / "x.wav"], "no pitched notes"),
        (["render", EXAMPLE, "-o", tmp_path / "x.wav", "--preset", "nope"], "unknown preset 'nope'"),
        (["render", EXAMPLE, "-o", tmp_path / "x.wav", "--sample-rate", 8000, "--preset", "parametric"],
         "not supported"),
        (["render", EXAMPLE, "-o", tmp_path / "x.mp3", "--preset", "parametric"], "use a .wav or .flac"),
    ]
    for args, message in cases:
        r = run(*args)
        assert r.returncode == 1, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and message in lines[-1] and "Traceback" not in r.stderr
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".wav", ".mp3", ".part")]
