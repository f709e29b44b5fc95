"""The Ardour helper (`python -m daw_bridge ardour-render`) and installer, without Ardour: the helper runs as a real
process against a real engine service on 127.0.0.1 and is read the way the Lua scripts read it (tab-separated lines
on stdout). The Lua side is covered in the real Ardour by tests/test_ardour_e2e.py."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from service_fixtures import running_service

from daw_bridge import protocol as p
from daw_bridge.ardour_helper import RequestError, parse_request
from daw_bridge.client import EngineClient

ROOT = Path(__file__).resolve().parent.parent
RATE = 22050
NOTES = [("a", 60, 0.1, 0.5), ("b", 64, 0.6, 0.9)]


def request_text(notes=NOTES, controls=None, samples=RATE, clip="ardour:test:1", preset="parametric", rate=RATE):
    lines = ["ddsp-ardour-request\t1", f"clip\t{clip}", f"preset\t{preset}", f"sample_rate\t{rate}",
             f"samples\t{samples}", "seed\t0"]
    for i, (note_id, pitch, onset, offset) in enumerate(notes):
        values = (controls or {}).get(note_id, [-1] * 6)
        lines.append("\t".join(["note", note_id, str(pitch), repr(onset), repr(offset), "100"] + [repr(v) for v in values]))
    return "\n".join(lines) + "\n"


def helper(tmp_path, text, port, *extra, env=None, timeout=120):
    request = tmp_path / "request.txt"
    request.write_text(text, encoding="utf-8")
    raw = tmp_path / "out.f32"
    done = subprocess.run([sys.executable, "-m", "daw_bridge", "ardour-render", str(request), str(raw),
                           "--port", str(port), "--timeout", "60", *extra], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)
    reply = {"controls": {}, "warnings": [], "lines": done.stdout.splitlines(), "status": done.returncode}
    for line in reply["lines"]:
        kind, *fields = line.split("\t")
        if kind == "control":
            reply["controls"][fields[0]] = [float(v) for v in fields[1:]]
        elif kind in ("ok", "audio", "error"):
            reply[kind] = fields
        elif kind == "warning":
            reply["warnings"].append(fields[0])
    return reply, raw


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------- requests

def test_parse_request_reads_notes_and_controls():
    request = parse_request(request_text(controls={"b": [0.1, 0.2, 0.3, 0.4, 0.5, 1.7]}))
    assert (request.clip, request.preset, request.sample_rate, request.samples, request.seed) == \
        ("ardour:test:1", "parametric", RATE, RATE, 0)
    a, b = request.notes
    assert a == {"id": "a", "pitch": 60, "onset": 0.1, "offset": 0.5, "velocity": 100}  # all -1: engine chooses
    assert b["controls"] == [0.1, 0.2, 0.3, 0.4, 0.5, 1.0]  # clamped into the lanes' range


def test_parse_request_turns_controller_events_into_curves():
    """`event` lines (pitch bend, CC11 on the notes' channels) become the notes' curves, as from a MIDI file; a
    linear line ramps in 10 ms steps."""
    text = request_text() + "".join(["note\tc\t67\t0.6\t0.9\t100\t-1\t-1\t-1\t-1\t-1\t-1\t3\n",
                                     "event\tbend\t0\t0\t0.55\t4096\t0\n",
                                     "event\tcc\t3\t11\t0.6\t127\t1\n", "event\tcc\t3\t11\t0.7\t0\t0\n"])
    a, b, c = parse_request(text).notes
    assert "curves" not in a  # the bend comes after it ends
    assert b["curves"] == {"cents": [[0.0, 100.0]]}  # and holds through the next note of its channel
    gain = c["curves"]["gain_db"]
    assert gain[0] == [0.0, 0.0] and gain[-1] == [pytest.approx(0.1), -120.0] and len(gain) == 2 * 10 - 1
    assert all("channel" not in n for n in (a, b, c))


@pytest.mark.parametrize("text, message", [
    (request_text() + "event\tbend\t0\t0\t0.3\t9000\t0\n", "out of range"),
    (request_text() + "event\twheel\t0\t0\t0.3\t1\t0\n", "an event has 6 fields"),
    ("", "not a version 1 request"),
    ("ddsp-ardour-request\t2\n", "not a version 1 request"),
    (request_text().replace("preset\tparametric\n", ""), "missing preset"),
    (request_text(notes=[]), "no notes"),
    (request_text().replace("\t100\t", "\tloud\t", 1), "line 7"),
    (request_text() + "note\tx\t60\t0\t1\n", r"line 9: a note has 11 fields \(12 with its channel\), got 4"),
    (request_text() + "colour\tred\n", "line 9: unknown item 'colour'"),
    (request_text(rate=8000), "sample_rate 8000 outside"),
    (request_text(samples=0), "samples 0 outside"),
    (request_text(controls={"a": [float("nan")] * 6}), "controls must be finite"),
])
def test_parse_request_refuses_bad_requests(text, message):
    with pytest.raises(RequestError, match=message):
        parse_request(text)


# ---------------------------------------------------------------------------------------------------- the helper

def test_helper_renders_and_answers_in_lines(tmp_path):
    with running_service(tmp_path) as service:
        reply, raw = helper(tmp_path, request_text(samples=RATE + 123), service.port)
        assert reply["status"] == 0, reply["lines"]
        mode, rerendered, _ = reply["ok"]
        assert (mode, rerendered) == ("full", "2")
        raw_path, samples, engine_file = reply["audio"]
        assert (Path(raw_path), int(samples)) == (raw, RATE + 123)
        audio = np.fromfile(raw, dtype="<f4")
        engine_audio, rate = sf.read(engine_file, dtype="float32")
        assert rate == RATE and len(audio) == RATE + 123  # exactly the region's length
        n = min(len(audio), len(engine_audio))
        assert np.array_equal(audio[:n], engine_audio[:n]) and not audio[n:].any()
        assert np.abs(audio[round(0.2 * RATE):round(0.4 * RATE)]).max() > 0.01
        assert set(reply["controls"]) == {"a", "b"}

        # the controls printed are exact: sent back unchanged, nothing is re-rendered
        again, _ = helper(tmp_path, request_text(samples=RATE + 123, controls=reply["controls"]), service.port)
        assert again["ok"][:2] == ["incremental", "0"] and again["controls"] == reply["controls"]
        # one edited value re-renders that note only
        edited = {**reply["controls"], "b": [0.2] + reply["controls"]["b"][1:]}
        third, _ = helper(tmp_path, request_text(samples=RATE + 123, controls=edited), service.port)
        assert third["ok"][:2] == ["incremental", "1"] and third["controls"]["b"][0] == pytest.approx(0.2)


def test_helper_reports_errors_as_one_line(tmp_path):
    with running_service(tmp_path) as service:
        reply, raw = helper(tmp_path, request_text(preset="no-such-preset"), service.port)
        assert reply["status"] == 1 and reply["error"][0] == p.UNKNOWN_PRESET and not raw.exists()
        reply, _ = helper(tmp_path, "ddsp-ardour-request\t1\nclip\tx\n", service.port)
        assert reply["status"] == 1 and reply["error"][0] == "bad_request" and "missing" in reply["error"][1]
        assert len(reply["lines"]) == 1
    reply, _ = helper(tmp_path, request_text(), free_port())  # nothing listens there
    assert reply["status"] == 1 and reply["error"][0] == p.NO_ENGINE and "python -m engine serve" in reply["error"][1]


def test_helper_starts_the_engine_when_asked(tmp_path):
    port = free_port()
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    pid_file = tmp_path / "cache" / "ddsp-engine" / "engine.pid"
    try:
        reply, raw = helper(tmp_path, request_text(), port, "--start-engine", env=env, timeout=180)
        assert reply["status"] == 0, reply["lines"]
        assert len(np.fromfile(raw, dtype="<f4")) == RATE
        with EngineClient("127.0.0.1", port, "test") as engine:  # it keeps running for the next render
            assert engine.ping(timeout=5)["engine_id"]
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


# ---------------------------------------------------------------------------------------------------- installer

def install(*args):
    return subprocess.run([sys.executable, "-m", "daw_bridge", "install", "ardour", *args], cwd=ROOT,
                          capture_output=True, text=True)


def test_install_writes_the_scripts_and_the_config(tmp_path):
    folder = tmp_path / "it's ardour7"
    done = install("--config-dir", str(folder), "--port", "9801", "--preset", "flute", "--no-engine-start")
    assert done.returncode == 0, done.stderr
    scripts = folder / "scripts"
    assert sorted(path.name for path in scripts.glob("*.lua")) == ["ddsp_expression.lua", "ddsp_player.lua",
                                                                   "ddsp_render.lua"]
    assert sorted(path.name for path in (scripts / "ddsp").iterdir()) == ["config.lua", "ddsp_headless.lua",
                                                                         "ddsp_lib.lua"]
    action = (scripts / "ddsp_render.lua").read_text()
    assert f'local DDSP_DIR = "{scripts / "ddsp"}"' in action and "@DDSP_DIR@" not in action
    config = (scripts / "ddsp" / "config.lua").read_text()
    for line in (f'python = "{sys.executable}"', f'pythonpath = "{ROOT}"', "port = 9801", 'preset = "flute"',
                 "start_engine = false"):
        assert line in config
    for name in ("ddsp_expression.lua", "ddsp_player.lua"):  # Ardour finds Lua DSP scripts by their header
        assert (scripts / name).read_text() == (ROOT / "daw_bridge" / "ardour" / name).read_text()
        assert '["type"]    = "dsp"' in (scripts / name).read_text()

    again = install("--config-dir", str(folder), "--port", "9802")  # re-install replaces
    assert again.returncode == 0, again.stderr
    config = (scripts / "ddsp" / "config.lua").read_text()
    assert "port = 9802" in config and "start_engine = true" in config
    assert not [p for p in scripts.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_install_refuses_a_bad_port(tmp_path):
    done = install("--config-dir", str(tmp_path / "ardour7"), "--port", "70000")
    assert done.returncode == 1 and "outside 1..65535" in done.stderr and not (tmp_path / "ardour7").exists()
