"""The CLI as a user runs it: a subprocess, real files, one-line errors."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, slow_writer_env, write_midi
from engine.render import LIMIT_CEILING

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
    assert r.returncode == 0, r.stderr
    assert sf.info(str(tmp_path / "a.flac")).subtype == "PCM_16"
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


def loud_song(tmp_path):
    """A MIDI file with a four-note chord and an expression file asking full volume of each note."""
    midi = write_midi(tmp_path / "loud.mid", [(73, [(48, 0, 2, 100), (55, 0, 2, 100), (60, 0, 2, 100), (64, 0, 2, 100),
                                                    (67, 2, 3, 90)])])
    controls = {"volume": 1.0, "volume_fluctuation": 0.2, "volume_peak_position": 0.5, "vibrato": 0.3,
                "brightness": 0.8, "attack_noise": 0.6}
    notes = [{"id": f"t0n{i}", "pitch": pitch, "controls": controls} for i, pitch in enumerate([48, 55, 60, 64, 67])]
    expression = tmp_path / "loud.json"
    expression.write_text(json.dumps({"format": "ddsp-expression", "version": 1, "notes": notes}))
    return midi, expression


def test_two_processes_write_the_same_bytes_and_a_loud_mix_is_limited_with_a_warning(tmp_path):
    """Same input, same bytes: compared between two processes (a float WAV: no time stamp inside either). The mix
    would clip; it is limited, and the CLI says so."""
    midi, expression = loud_song(tmp_path)
    outputs = []
    for name in ("a.wav", "b.wav"):
        r = run("render", midi, "-o", tmp_path / name, "--preset", "parametric", "--bits", "float", "--expression",
                expression, "--sample-rate", 22050)
        assert r.returncode == 0, r.stderr
        assert "limiter" in r.stderr, r.stderr
        outputs.append((tmp_path / name).read_bytes())
        time.sleep(1.1)  # a second apart: anything time-stamped would differ
    assert outputs[0] == outputs[1]
    audio, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    assert 0.5 < np.abs(audio).max() <= LIMIT_CEILING


def test_killed_while_writing_leaves_no_partial_file(tmp_path):
    """The kill lands inside the file write (a hook stops soundfile half-way): the output name never holds a
    partial file."""
    env = slow_writer_env(tmp_path)
    mark = Path(env["DDSP_TEST_WRITE_MARK"])
    out = tmp_path / "song" / "out.flac"
    out.parent.mkdir()
    midi = write_midi(tmp_path / "short.mid", [(73, [(60, 0, 1, 100), (64, 1, 2, 100)])])
    process = subprocess.Popen([sys.executable, "-m", "engine", "render", str(midi), "-o", str(out), "--preset",
                                "parametric", "--sample-rate", "16000", "-q"], cwd=ROOT, stderr=subprocess.PIPE,
                               env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 300
        while not mark.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the CLI did not start writing within 300 s"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait(30)
        process.stderr.close()
    half_written = Path(mark.read_text())
    assert half_written.exists() and half_written.stat().st_size > 1000  # the kill hit the write itself
    assert not out.exists()
    assert not [f for f in out.parent.iterdir() if not f.name.startswith(".")]  # nothing partial is visible


@pytest.mark.parametrize("content", [None, b"", b"not a MIDI file"])
def test_bad_input_answers_without_importing_torch(tmp_path, content):
    """A missing, empty or unreadable MIDI file is one error line, found before the engine (torch) loads."""
    path = tmp_path / "song.mid"
    if content is not None:
        path.write_bytes(content)
    code = ("import sys; from engine.cli import main; rc = main(['render', sys.argv[1], '-o', sys.argv[2]]); "
            "print('torch' in sys.modules, rc)")
    r = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "out.wav")], capture_output=True,
                       text=True, timeout=60)
    assert r.stdout.split() == ["False", "1"], r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert not (tmp_path / "out.wav").exists()
