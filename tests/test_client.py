"""The DAW-side client: `python -m daw_bridge` as a user runs it, the blocking client, and a DAW-style poll loop."""
import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, write_midi
from daw_bridge import protocol as p
from daw_bridge.client import EngineClient, EngineError
from daw_bridge.midifile import read_tracks
from engine.notes import Clip, clips_from_midi, note_to_data
from engine.render import render_clip
from service_fixtures import client_for, notes, running_service


def bridge(*args):
    return subprocess.run([sys.executable, "-m", "daw_bridge", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_midi_notes_match_the_engine_reader_through_tempo_changes(tmp_path):
    midi = write_midi(tmp_path / "t.mid", [(73, [(72, 0, 1, 90), (74, 1, 2.5, 80), (76, 3, 4, 70)]),
                                           (42, [(48, 0.5, 3.5, 100)])], tempi=((0, 120), (2, 60), (3.5, 150)))
    ours = read_tracks(midi)
    theirs = clips_from_midi(midi)
    assert [notes_ for _, notes_ in ours] == [[{k: v for k, v in note_to_data(n).items()} for n in clip.notes]
                                            for clip in theirs]
    assert ours[0][1][2]["offset"] == pytest.approx(1.0 + 1.0 + 0.5 + 0.2, abs=1e-9)  # beat 4 through 3 tempi


def test_send_round_trips_a_midi_file_and_an_edit_re_renders_incrementally(tmp_path, parametric):
    midi = write_midi(tmp_path / "in.mid", [(73, [(60 + i % 12, i * 0.5, i * 0.5 + 0.45, 60 + i) for i in range(24)])])
    out, controls = tmp_path / "out.wav", tmp_path / "controls.json"
    with running_service(tmp_path) as service:
        first = bridge("send", midi, "--preset", "parametric", "--port", service.port, "--sample-rate", 22050,
                       "-o", out, "--controls", controls, "-q")
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == str(out)
        written = json.loads(controls.read_text())
        assert len(written) == 24 and set(written["t0n5"]) == set(p.CONTROL_NAMES)
        written["t0n5"]["brightness"] = 0.95
        controls.write_text(json.dumps(written))
        second = bridge("send", midi, "--port", service.port, "--sample-rate", 22050, "--controls-in", controls,
                        "--json")
        assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    (track,) = result["tracks"]
    assert track["mode"] == "incremental" and "t0n5" in track["rerendered"] and len(track["rerendered"]) < 6
    assert result["controls"]["t0n5"]["brightness"] == pytest.approx(0.95)
    ((_, sent),) = read_tracks(midi)
    edited = Clip.from_data([{**n, "controls": written[n["id"]]} for n in sent]).checked()
    audio, _ = sf.read(result["path"], dtype="float32")
    assert np.abs(audio - render_clip(edited, parametric, 22050).audio).max() < 1e-5
    assert sf.read(out, dtype="float32")[0].shape == audio.shape


def test_send_mixes_several_tracks(tmp_path):
    midi = write_midi(tmp_path / "two.mid", [(73, [(72, 0, 1, 90)]), (42, [(48, 0, 2, 90)])])
    with running_service(tmp_path) as service:
        r = bridge("send", midi, "--port", service.port, "--sample-rate", 16000, "-o", tmp_path / "mix.wav",
                   "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    parts = [sf.read(t["path"], dtype="float32")[0] for t in result["tracks"]]
    mix = sf.read(tmp_path / "mix.wav", dtype="float32")[0]
    assert len(parts) == 2 and len(mix) == max(map(len, parts))
    np.testing.assert_allclose(mix[:len(parts[0])], parts[0] + parts[1][:len(parts[0])], atol=1e-7)


def test_cli_errors_are_one_line(tmp_path):
    missing = bridge("send", tmp_path / "nope.mid")
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: no such MIDI file: {tmp_path / 'nope.mid'}"
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    midi = write_midi(tmp_path / "a.mid", [(73, [(72, 0, 1, 90)])])
    nobody = bridge("send", midi, "--port", port, "--timeout", 1, "--retries", 0, "-q")
    assert nobody.returncode == 1 and nobody.stderr.startswith("error: timeout")
    with running_service(tmp_path) as service:
        unknown = bridge("send", midi, "--port", service.port, "--preset", "tuba-9000", "-q")
        assert unknown.returncode == 1 and "error: unknown_preset" in unknown.stderr
        ping = bridge("ping", "--port", service.port)
        presets = bridge("presets", "--port", service.port)
    assert ping.returncode == 0 and service.engine_id in ping.stdout
    assert presets.returncode == 0 and any(line.split()[:2] == ["parametric", "parametric"]
                                           for line in presets.stdout.splitlines())


def test_client_reports_a_missing_engine():
    with EngineClient(port=9, timing=p.Timing(connect_timeout=0.5)) as client:
        started = time.monotonic()
        with pytest.raises(EngineError) as error:
            client.ping()
        assert error.value.code == p.NO_ENGINE and time.monotonic() - started < 3


def test_a_live_style_poll_loop_with_a_100_ms_tick(tmp_path, parametric):
    """Ableton Live's Remote Scripts have no threads: a non-blocking socket read from a ~100 ms tick."""
    sent = notes(400, step=0.05, length=0.04)
    with running_service(tmp_path) as service:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        bridge_ = p.Bridge("live-test")
        session = bridge_.render("live-clip", "parametric", sent, sample_rate=16000)
        ticks = 0
        while not session.finished and ticks < 600:
            time.sleep(0.1)
            ticks += 1
            now = time.monotonic()
            while True:
                try:
                    data, _ = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                bridge_.handle_datagram(data, now)
            for data in bridge_.poll(now):
                sock.sendto(data, ("127.0.0.1", service.port))
        sock.close()
    assert session.state == "done", session.error
    assert list(session.result.controls) == [n["id"] for n in sent]
    audio, _ = sf.read(session.result.path, dtype="float32")
    assert np.array_equal(audio, render_clip(Clip.from_data(sent).checked(), parametric, 16000).audio)


def test_a_client_times_out_and_cancels(tmp_path):
    with running_service(tmp_path) as service, client_for(service) as client:
        with pytest.raises(EngineError, match="timeout"):
            client.render("slow", "parametric", notes(200, step=0.5, length=0.45), timeout=0.3)
        deadline = time.monotonic() + 30
        while client.ping()["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.ping()["running"] == 0 and not list(service.render_dir.glob("slow*"))
