"""The REAPER scripts end to end: the unchanged script files (installed by the real installer) run in the REAPER
host simulator (tests/reaper_sim.py) against the real engine service over OSC on 127.0.0.1; the rendered WAVs are
checked against the engine's own render of the expected notes."""
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from reaper_sim import SQUARE, ReaperSim

from daw_bridge import protocol as p
from daw_bridge.install import install_reaper_files
from engine.notes import Clip
from engine.presets import list_presets, load_preset
from engine.render import render_clip
from engine.service import Service, ServiceConfig

RATE = 16000
RENDER = "DDSP - Render selected MIDI items.py"
REGENERATE = "DDSP - Regenerate expression of selected MIDI items.py"
FOLLOW = "DDSP - Follow edits (toggle).py"
PRESET = "DDSP - Choose preset for selected tracks.py"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    service = Service(ServiceConfig(port=0, render_dir=tmp_path_factory.mktemp("renders"))).start()
    yield service
    service.stop()


class Session:
    """A simulated REAPER with the scripts installed, talking to `port`."""

    def __init__(self, root: Path, port: int, **config):
        self.scripts, _, _ = install_reaper_files(root / "REAPER", None, port=port)
        settings = json.loads((self.scripts / "ddsp_config.json").read_text())
        settings.update({"debounce": 0.3, "scan_interval": 0.05, **config})
        (self.scripts / "ddsp_config.json").write_text(json.dumps(settings))
        self.sim = ReaperSim(root / "REAPER", root / "project", sample_rate=RATE)

    def run(self, script: str, timeout: float = 30.0) -> dict:
        context = self.sim.run_script(self.scripts / script)
        self.sim.run_until(timeout=timeout)
        assert not self.sim.errors, self.sim.errors
        return context

    def start(self, script: str) -> dict:
        return self.sim.run_script(self.scripts / script)

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sim.step()
            time.sleep(0.005)
        assert not self.sim.errors, self.sim.errors

    def wait_for(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        self.sim.run_until(lambda: self.sim.console_text().count(text) >= count, timeout=timeout)
        assert not self.sim.errors, self.sim.errors

    def render_items(self, track_name: str):
        tracks = self.sim.tracks_named(f"{track_name} (render)")
        return tracks[0].sorted_items() if tracks else []


@pytest.fixture
def session(tmp_path, engine):
    return Session(tmp_path, engine.port)


def state_of(item) -> dict:
    return json.loads(item.ext["ddsp_state"])


def audio_of(item) -> np.ndarray:
    audio, rate = soundfile.read(item.take.source.path, dtype="float32")
    assert rate == RATE
    return audio


def expected_audio(notes, length, controls=None):
    """The engine's own render of notes [(pitch, onset, offset, velocity)] (with the given per-note controls)."""
    data = [{"id": str(i), "pitch": n[0], "onset": n[1], "offset": n[2], "velocity": n[3],
             "controls": None if controls is None else controls[i]} for i, n in enumerate(notes)]
    return render_clip(Clip.from_data(data), load_preset("parametric"), RATE, seed=0, duration=length).audio


def energy(audio, start, stop):
    return float(np.sqrt(np.mean(audio[int(start * RATE):int(stop * RATE)] ** 2)))


def test_render_places_audio_and_writes_lanes(session):
    sim = session.sim
    track = sim.add_track("Flute")
    item = sim.add_midi_item(track, 4, 4, [(0, 0.5, 72, 100), (1, 1.5, 76, 90), (2, 2.5, 79, 80), (3, 3.5, 72, 70)])
    sim.select_only(item)
    session.run(RENDER)
    assert "rendered 'Flute' item at 2.000 s: 4 notes" in sim.console_text()
    (render,) = session.render_items("Flute")
    assert render.position == item.position == 2.0 and render.length == item.length == 2.0
    assert render.ext["ddsp_render_of"] == item.guid
    assert render.info["D_FADEINLEN"] == render.info["D_FADEOUTLEN"] == render.info["B_LOOPSRC"] == 0
    assert [t.name for t in sim.project.tracks] == ["Flute", "Flute (render)"]
    audio = audio_of(render)
    assert audio.shape == (2 * RATE,)  # the item's length, sample 0 at the item's position
    notes = [(72, 0.0, 0.25, 100), (76, 0.5, 0.75, 90), (79, 1.0, 1.25, 80), (72, 1.5, 1.75, 70)]
    np.testing.assert_allclose(audio, expected_audio(notes, 2.0), atol=1e-5)
    for _, onset, offset, _ in notes:  # and independently of the engine: sound where the notes are
        assert energy(audio, onset + 0.02, offset) > 3 * energy(audio, onset - 0.1, onset - 0.02) or onset == 0
    assert energy(audio, 0.0, 0.25) > 1e-3
    assert Path(render.take.source.path).parent == Path(sim.project.path) / "DDSP renders"
    lanes = sim.lanes(track)
    assert sorted(lanes) == sorted(p.CONTROL_NAMES)
    memory = state_of(item)["notes"]
    for k, name in enumerate(p.CONTROL_NAMES):
        points = lanes[name].points
        assert [pt.time for pt in points] == [2.0, 2.5, 3.0, 3.5]  # one point per note onset
        assert all(pt.shape == SQUARE for pt in points)
        assert [pt.value for pt in points] == [memory[i]["c"][k] for i in ("72@0", "76@960", "79@1920", "72@2880")]
    assert sim.undo == ["DDSP: render 'Flute' item at 2.000 s"]  # one undo point
    assert sim.running() == 0


def test_rerender_replaces_only_that_items_render(session):
    sim = session.sim
    track = sim.add_track("Oboe")
    first = sim.add_midi_item(track, 0, 2, [(0, 1, 69, 100)])
    second = sim.add_midi_item(track, 4, 2, [(0, 1, 71, 100)])
    sim.select_only(first, second)
    session.run(RENDER)
    renders = session.render_items("Oboe")
    assert [(r.position, r.ext["ddsp_render_of"]) for r in renders] == [(0.0, first.guid), (2.0, second.guid)]
    second_file = renders[1].take.source.path
    copy = sim.add_audio_item(renders[0].track, renders[0].take.source.path, 0.0, 1.0)  # a producer's duplicate
    copy.ext["ddsp_render_of"] = first.guid
    first.take.notes[0].pitch = 67  # edit the first item, render it alone
    sim.select_only(first)
    session.run(RENDER)
    renders_after = session.render_items("Oboe")
    assert len(renders_after) == 3 and renders_after[0] is renders[0]  # the same item, a new file
    assert renders[0].take.source.path != copy.take.source.path
    assert renders_after[-1].take.source.path == second_file and copy.take.source.path.endswith(".wav")
    expected = expected_audio([(67, 0.0, 0.5, 100)], 1.0)
    np.testing.assert_allclose(audio_of(renders[0]), expected, atol=1e-5)


def test_lane_edit_rerenders_only_that_clip_around_that_note(session):
    sim = session.sim
    track = sim.add_track("Violin")
    edited = sim.add_midi_item(track, 0, 8, [(0, 0.8, 67, 100), (1, 1.8, 69, 100), (6, 6.8, 71, 100)])
    other = sim.add_midi_item(track, 8, 4, [(0, 1, 62, 100)])
    sim.select_only(edited, other)
    session.run(RENDER)
    render, other_render = session.render_items("Violin")
    before, other_file = audio_of(render), other_render.take.source.path
    controls_before = state_of(edited)["notes"]
    session.start(FOLLOW)
    session.run_for(0.5)
    assert "follow mode on" in sim.console_text() and "re-rendering" not in sim.console_text()
    sim.set_point(sim.lanes(track)["brightness"], 0.5, 0.95)  # the second note, at 0.5 s
    session.wait_for("follow: rendered")
    session.run_for(1.0)  # nothing else re-renders
    console = sim.console_text()
    assert console.count("follow: re-rendering") == 1 and "incremental (1 re-rendered)" in console
    assert other_render.take.source.path == other_file
    after = audio_of(render)
    changed = np.flatnonzero(np.abs(after - before) > 1e-6) / RATE
    assert changed.size and changed[0] >= 0.5 - 0.02  # nothing moves before the note
    assert changed[-1] < 3.0 - 0.3  # nor after its reverb tail: the third note (3.0 s) is untouched
    memory = state_of(edited)["notes"]
    assert memory["69@960"]["c"][4] == pytest.approx(0.95, abs=1e-6)
    assert memory["67@0"]["c"] == controls_before["67@0"]["c"]  # untouched notes keep their generated values
    notes = [(67, 0.0, 0.4, 100), (69, 0.5, 0.9, 100), (71, 3.0, 3.4, 100)]
    expected = expected_audio(notes, 4.0, [memory[i]["c"] for i in ("67@0", "69@960", "71@5760")])
    np.testing.assert_allclose(after, expected, atol=1e-5)  # incremental == a full render of the edit
    session.start(FOLLOW)  # the toggle stops it
    sim.run_until(timeout=10)
    assert "follow mode stopped" in sim.console_text() and sim.ext_state[("ddsp", "follow")] == ""
    assert sim.running() == 0 and not sim.errors


def test_tempo_change_moves_the_render(session):
    sim = session.sim
    track = sim.add_track("Horn")
    item = sim.add_midi_item(track, 4, 4, [(0, 0.5, 60, 100), (1, 1.5, 62, 100), (2, 2.5, 64, 100),
                                           (3, 3.5, 65, 100)])
    sim.select_only(item)
    session.run(RENDER)
    controls = [state_of(item)["notes"][i]["c"] for i in ("60@0", "62@960", "64@1920", "65@2880")]
    session.start(FOLLOW)
    session.run_for(0.3)
    sim.set_tempo([(0, 120), (2, 60), (5, 120)])  # slower from quarter 2, faster again from quarter 5
    session.wait_for("follow: rendered")
    (render,) = session.render_items("Horn")
    assert render.position == pytest.approx(3.0) and render.length == pytest.approx(2.5)
    notes = [(60, 0.0, 0.5, 100), (62, 1.0, 1.25, 100), (64, 1.5, 1.75, 100), (65, 2.0, 2.25, 100)]
    np.testing.assert_allclose(audio_of(render), expected_audio(notes, 2.5, controls), atol=1e-5)
    assert [pt.time for pt in sim.lanes(track)["volume"].points] == pytest.approx([3.0, 4.0, 4.5, 5.0])
    sim.terminate_all()  # REAPER's "terminate script": atexit cleans up
    assert sim.ext_state[("ddsp", "follow")] == "" and sim.running() == 0


def test_no_engine_gives_a_clear_message_and_changes_nothing(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = Session(tmp_path, port, connect_timeout=1.0)
    sim = session.sim
    track = sim.add_track("Cello")
    item = sim.add_midi_item(track, 0, 4, [(0, 1, 48, 100)])
    sim.select_only(item)
    session.run(RENDER)
    console = sim.console_text()
    assert f"no engine answered on 127.0.0.1:{port}" in console and "python -m engine serve --port" in console
    assert "Nothing was changed" in console
    assert [t.name for t in sim.project.tracks] == ["Cello"] and track.fx == [] and item.ext == {}


def test_bad_items_get_clear_messages(session, tmp_path):
    sim = session.sim
    track = sim.add_track("Keys")
    a = sim.add_midi_item(track, 0, 4, [(0, 1, 60, 100)])
    b = sim.add_midi_item(track, 2, 4, [(0, 1, 62, 100)])  # overlaps a
    empty = sim.add_midi_item(sim.add_track("Empty"), 0, 4, [])
    wav = tmp_path / "x.wav"
    soundfile.write(wav, np.zeros(RATE, dtype="float32"), RATE)
    audio = sim.add_audio_item(sim.add_track("Audio"), str(wav), 0.0, 1.0)
    good = sim.add_midi_item(sim.add_track("Bass"), 0, 2, [(0, 1, 40, 100)])
    sim.select_only(a, b, empty, audio, good)
    session.run(RENDER)
    console = sim.console_text()
    assert console.count("overlaps another MIDI item on track 'Keys'") == 2
    assert "track 'Empty': it has no notes to render" in console
    assert "track 'Audio': it is not a MIDI item" in console
    assert "rendered 'Bass' item" in console  # the good one still renders
    assert not sim.tracks_named("Keys (render)") and not sim.tracks_named("Empty (render)")
    assert len(session.render_items("Bass")) == 1


def test_regenerate_forgets_lane_edits(session):
    sim = session.sim
    track = sim.add_track("Sax")
    item = sim.add_midi_item(track, 0, 2, [(0, 1, 65, 100)])
    sim.select_only(item)
    session.run(RENDER)
    generated = state_of(item)["notes"]["65@0"]["c"]
    sim.set_point(sim.lanes(track)["vibrato"], 0.0, 0.9)
    session.run(RENDER)  # the edit is sent
    assert state_of(item)["notes"]["65@0"]["c"][3] == pytest.approx(0.9, abs=1e-6)
    session.run(REGENERATE)  # the engine chooses again
    assert state_of(item)["notes"]["65@0"]["c"] == generated
    assert sim.lanes(track)["vibrato"].points[0].value == generated[3]


def test_choose_preset_is_kept_per_track(session, engine):
    sim = session.sim
    track = sim.add_track("Lead")
    track.selected = True
    sim.user_inputs = ["1"]
    session.run(PRESET)
    names = [preset["name"] for preset in list_presets()]
    assert track.ext["ddsp_preset"] == names[0]
    assert "presets of the engine" in sim.console_text() and "parametric" in sim.console_text()
    sim.user_inputs = ["no-such-preset"]
    session.run(PRESET)
    assert "no preset named 'no-such-preset'" in sim.console_text() and track.ext["ddsp_preset"] == names[0]
    track.ext["ddsp_preset"] = "no-such-preset"  # a project from another machine
    item = sim.add_midi_item(track, 0, 2, [(0, 1, 60, 100)])
    sim.select_only(item)
    session.run(RENDER)
    assert "render failed: unknown_preset" in sim.console_text() and not session.render_items("Lead")


def test_scripts_start_the_engine_when_configured(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "engine", "serve", "--port", str(port), "--render-dir", str(tmp_path / "r")]
    session = Session(tmp_path, port, engine_command=command, engine_cwd=str(root), connect_timeout=1.0,
                      boot_timeout=90.0, engine_log=str(tmp_path / "engine.log"))
    sim = session.sim
    item = sim.add_midi_item(sim.add_track("Pad"), 0, 2, [(0, 1, 57, 100)])
    sim.select_only(item)
    context = session.start(RENDER)
    engine = context["_ddsp_tick"].__self__.engine  # it starts its process later, from the tick loop
    try:
        sim.run_until(timeout=120)
        assert not sim.errors
        console = sim.console_text()
        assert "starting the engine" in console and "the engine is up" in console and "rendered 'Pad'" in console
        assert len(session.render_items("Pad")) == 1
    finally:
        process = engine.process
        if process is not None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_a_chord_shares_one_point_and_an_edit_of_it_reaches_every_note(session):
    sim = session.sim
    track = sim.add_track("Strings")
    item = sim.add_midi_item(track, 0, 4, [(0, 1, 60, 50), (0, 1, 64, 110), (2, 3, 62, 100)])
    sim.select_only(item)
    session.run(RENDER)
    memory = state_of(item)["notes"]
    lane = sim.lanes(track)["volume_peak_position"]
    assert [pt.time for pt in lane.points] == [0.0, 1.0]  # one point for the chord
    assert lane.points[0].value == memory["64@0"]["c"][2]  # the highest note's value
    assert memory["60@0"]["l"] == memory["64@0"]["c"] and "l" not in memory["64@0"]
    session.run(RENDER)  # untouched: each chord note keeps its own values, nothing is re-made
    assert state_of(item)["notes"] == memory and "incremental (0 re-rendered)" in sim.console_text()
    sim.set_point(lane, 0.0, 0.9)
    session.run(RENDER)
    after = state_of(item)["notes"]
    for note in ("60@0", "64@0"):
        assert after[note]["c"][2] == pytest.approx(0.9, abs=1e-6)
        assert after[note]["c"][:2] == memory[note]["c"][:2]  # the other lanes were not edited
    assert after["62@1920"]["c"] == memory["62@1920"]["c"]
