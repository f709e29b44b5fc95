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

    def run(self, script: str, timeout: float = 30.0):
        instance = self.sim.run_script(self.scripts / script)
        self.sim.run_until(timeout=timeout)
        assert not self.sim.errors, self.sim.errors
        return instance

    def start(self, script: str):
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


def runners(sim) -> list:
    """The action loops running in the simulated REAPER (ddsp_reaper's run registry)."""
    runs = sim.module_named("ddsp_reaper.runs")
    return list(runs.RUNS.values()) if runs else []


def state_of(item) -> dict:
    """What a MIDI item remembers of its last render: a JSON file in the render folder named in its P_EXT (older
    versions kept the JSON itself in P_EXT)."""
    value = item.ext["ddsp_state"]
    if value.startswith("{"):
        return json.loads(value)
    return json.loads((Path(item.project.path) / "DDSP renders" / value.split("\n")[0]).read_text())


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
    sim.user_inputs = ["parametric,lower,12"]  # the MPE zone and bend range of the track, asked with the preset
    session.run(PRESET)
    assert (track.ext["ddsp_preset"], track.ext["ddsp_mpe"], track.ext["ddsp_bend_range"]) == \
        ("parametric", "lower", "12")
    sim.user_inputs = ["parametric,sideways,2", "parametric,off,200"]
    session.run(PRESET)
    session.run(PRESET)
    assert "MPE zone 'sideways'" in sim.console_text() and "'200' is not a number of semitones" in sim.console_text()
    assert track.ext["ddsp_mpe"] == "lower"
    sim.user_inputs = ["parametric,off,2"]
    session.run(PRESET)
    assert (track.ext["ddsp_mpe"], track.ext["ddsp_bend_range"]) == ("", "2")
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
    session.start(RENDER)
    [runner] = runners(sim)
    engine = runner.engine  # it starts its process later, from the tick loop
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
    assert memory["60@0"]["c"] == memory["64@0"]["c"]  # the engine gives a chord's notes one set of controls
    session.run(RENDER)  # untouched: the point reads back what both notes play, nothing is re-made
    assert state_of(item)["notes"] == memory and "incremental (0 re-rendered)" in sim.console_text()
    sim.set_point(lane, 0.0, 0.9)
    session.run(RENDER)
    after = state_of(item)["notes"]
    for note in ("60@0", "64@0"):
        assert after[note]["c"][2] == pytest.approx(0.9, abs=1e-6)
        assert after[note]["c"][:2] == memory[note]["c"][:2]  # the other lanes were not edited
    assert after["62@1920"]["c"] == memory["62@1920"]["c"]


# ---------------------------------------------------------------------------------------------------- REAPER's host
# What checks against the real REAPER found (docs/reaper.md, "What was verified"): one __main__ for every script, the
# wrapper's 4 MiB string buffers, renamed effects, new lanes needing TrackList_AdjustWindows, project tabs.

def test_a_render_while_follow_mode_runs_leaves_follow_mode_running(session):
    """All Python ReaScripts share one __main__: a render started while follow mode runs must not take over
    follow mode's loop (a global name would be shared)."""
    sim = session.sim
    track = sim.add_track("Flute")
    first = sim.add_midi_item(track, 0, 4, [(0, 1, 67, 100), (2, 3, 69, 100)])
    second = sim.add_midi_item(track, 8, 4, [(0, 1, 71, 100)])
    sim.select_only(first)
    session.run(RENDER)
    session.start(FOLLOW)
    session.run_for(0.3)
    sim.select_only(second)
    session.start(RENDER)
    session.wait_for("rendered 'Flute' item at 4.000 s", timeout=10)
    assert sim.running() == 1, "follow mode is still running"
    sim.set_point(sim.lanes(track)["vibrato"], 0.0, 0.9)
    session.wait_for("follow: rendered", timeout=10)
    assert state_of(first)["notes"]["67@0"]["c"][3] == pytest.approx(0.9, abs=1e-6)
    session.start(FOLLOW)
    sim.run_until(timeout=10)
    assert "follow mode stopped" in sim.console_text() and runners(sim) == [] and not sim.errors


def test_two_renders_at_once_both_finish(session):
    """Running the render action again while it renders (REAPER's task control answered "New instance"): both
    batches finish, each run closes its socket."""
    sim = session.sim
    oboe = sim.add_midi_item(sim.add_track("Oboe"), 0, 2, [(0, 1, 69, 100)])
    horn = sim.add_midi_item(sim.add_track("Horn"), 0, 2, [(0, 1, 57, 100)])
    sim.select_only(oboe)
    session.start(RENDER)
    sim.select_only(horn)
    session.start(RENDER)
    assert sim.task_control_asked == [RENDER]
    sim.run_until(timeout=20)
    console = sim.console_text()
    assert "rendered 'Oboe' item" in console and "rendered 'Horn' item" in console, console
    assert len(session.render_items("Oboe")) == len(session.render_items("Horn")) == 1
    assert runners(sim) == [] and not sim.errors


@pytest.mark.parametrize("count", [3, 12])
def test_idle_follow_mode_reads_no_strings(tmp_path, engine, count):
    """REAPER's wrapper zero-fills a 4 MiB buffer for every char* argument: follow mode's checks while nothing
    changes (every `scan_interval`, and the full check every `full_scan_interval`) must pass none, however many
    items it follows; a check after a project change passes a few per followed item and track."""
    session = Session(tmp_path, engine.port, full_scan_interval=0.2)
    sim = session.sim
    track = sim.add_track("Keys")
    items = [sim.add_midi_item(track, 4 * i, 2, [(0, 1, 60 + i, 100)]) for i in range(count)]
    sim.select_only(*items)
    session.run(RENDER, timeout=60)
    assert len(session.render_items("Keys")) == count
    session.start(FOLLOW)
    session.run_for(1.0)
    strings, zeroed, calls = sum(sim.string_calls.values()), sim.zeroed_bytes, len(sim.calls)
    session.run_for(1.5)  # about seven full checks, nothing changed
    idle = [name for name in sim.calls[calls:] if name not in ("GetExtState", "SetExtState",
                                                                 "GetProjectStateChangeCount")]
    assert sum(sim.string_calls.values()) == strings and sim.zeroed_bytes == zeroed, sim.string_calls
    checks = idle.count("CountMediaItems")  # one per full check
    assert checks >= 5 and len(idle) <= checks * (10 + 8 * count + 12), "a few numbers per item and lane"
    sim.changed()  # REAPER reports a change (an undo point), but nothing the items depend on changed
    session.run_for(0.3)
    after_change = sum(sim.string_calls.values()) - strings
    assert after_change <= 1 + count + 7, sim.string_calls  # project, one per item (MIDI hash), 7 per track
    assert "re-rendering" not in sim.console_text()
    sim.terminate_all()


def test_an_item_memory_larger_than_the_wrappers_string_buffer(session):
    """Strings over the wrapper's 4 MiB raise ValueError; an item's memory grows ~170 bytes a note (the protocol
    allows 100k notes), so it must not go through a char* argument. Scaled down: a 16 KiB buffer, 160 notes."""
    sim = session.sim
    sim.max_strbuf = 16 * 1024
    track = sim.add_track("Harp")
    notes = [(i * 0.25, i * 0.25 + 0.2, 48 + (i * 7) % 36, 100) for i in range(160)]
    item = sim.add_midi_item(track, 0, 41, notes)
    sim.select_only(item)
    session.run(RENDER, timeout=60)
    console = sim.console_text()
    assert "internal error" not in console and "rendered 'Harp' item at 0.000 s: 160 notes" in console, console
    assert len(state_of(item)["notes"]) == 160 and len(item.ext["ddsp_state"]) < 600
    sim.set_point(sim.lanes(track)["vibrato"], 0.5, 0.9)  # the fifth note (quarter note 1.0)
    session.run(RENDER, timeout=60)
    assert "incremental (1 re-rendered)" in sim.console_text()
    memory = state_of(item)["notes"]
    assert [n for n, m in memory.items() if m["c"][3] == pytest.approx(0.9, abs=1e-6)] == ["76@960"]
    assert sim.longest_string < 1024, "nothing passed to REAPER grows with the notes"


def test_a_renamed_expression_effect_is_still_found(session):
    """The effect is found by what it is (fx_ident), not by the name shown in the FX chain, which the user can
    change: no second copy, no six more lanes, and lane edits are still read."""
    sim = session.sim
    track = sim.add_track("Cello")
    item = sim.add_midi_item(track, 0, 2, [(0, 1, 48, 100)])
    sim.select_only(item)
    session.run(RENDER)
    sim.rename_fx(track, 0, "my cello expression")
    sim.set_point(sim.lanes(track)["vibrato"], 0.0, 0.9)
    session.run(RENDER)
    assert len(track.fx) == 1 and len(track.fx[0].envelopes) == 6
    assert state_of(item)["notes"]["48@0"]["c"][3] == pytest.approx(0.9, abs=1e-6)


def test_new_lanes_are_shown(session):
    """REAPER may not show new envelopes until TrackList_AdjustWindows (GetSetEnvelopeInfo_String's documentation):
    called after the lanes are created, not on every render."""
    sim = session.sim
    item = sim.add_midi_item(sim.add_track("Viola"), 0, 2, [(0, 1, 60, 100)])
    sim.select_only(item)
    session.run(RENDER)
    shown = max(i for i, name in enumerate(sim.calls) if name == "GetSetEnvelopeInfo_String")  # lanes made
    assert "TrackList_AdjustWindows" in sim.calls[shown:]  # visible as they are created
    calls = len(sim.calls)
    session.run(RENDER)
    assert "TrackList_AdjustWindows" not in sim.calls[calls:], "no lane was created this time"


def test_switching_project_tabs_during_a_render_places_it_when_its_tab_is_back(session, tmp_path):
    """The wrapper passes pointers of a project that is not the active tab as NULL: a render that finishes while
    another tab is active waits (ValidatePtr2 with the item's project tells it still exists) and is placed when
    its tab is active again."""
    sim = session.sim
    first = sim.project
    track = sim.add_track("Bass")
    item = sim.add_midi_item(track, 0, 2, [(0, 1, 40, 100)])
    sim.select_only(item)
    session.start(RENDER)
    sim.add_project(tmp_path / "other")  # File > New project tab, before the engine answers
    sim.run_until(lambda: sim.running() == 0 or "project tab is active again" in sim.console_text(), timeout=20)
    assert "deleted" not in sim.console_text() and not sim.tracks_named("Bass (render)")
    sim.switch_project(first)
    sim.run_until(timeout=20)
    assert "rendered 'Bass' item" in sim.console_text() and len(session.render_items("Bass")) == 1
    assert not sim.errors


def test_follow_mode_across_project_tabs_and_the_terminate_answer(session, tmp_path):
    """Follow mode follows the active tab: another tab's items are not touched while it is shown, and edits are
    followed again once the first tab is back. Re-running the toggle with REAPER's task control answered
    "Terminate instances" stops it as cleanly as the toggle does."""
    sim = session.sim
    first = sim.project
    track = sim.add_track("Sitar")
    item = sim.add_midi_item(track, 0, 2, [(0, 1, 62, 100)])
    sim.select_only(item)
    session.run(RENDER)
    session.start(FOLLOW)
    session.run_for(0.3)
    sim.add_project(tmp_path / "other")
    sim.add_track("Empty")
    session.run_for(0.5)
    sim.switch_project(first)
    sim.set_point(sim.lanes(track)["brightness"], 0.0, 0.9)
    session.wait_for("follow: rendered", timeout=10)
    assert state_of(item)["notes"]["62@0"]["c"][4] == pytest.approx(0.9, abs=1e-6)
    sim.task_control = "terminate instances"
    session.start(FOLLOW)
    assert sim.running() == 0 and runners(sim) == [] and sim.ext_state[("ddsp", "follow")] == ""
    assert "deleted" not in sim.console_text() and not sim.errors


def curved_audio(notes, length):
    """The engine's own render of note dicts (with curves) from the parametric preset."""
    return render_clip(Clip.from_data(notes), load_preset("parametric"), RATE, seed=0, duration=length).audio


def test_pitch_bend_renders_and_follow_mode_follows_an_edit_of_it(session):
    """An item's pitch bend (MIDI_GetCC) bends its notes; dragging the bend event re-renders incrementally."""
    sim = session.sim
    track = sim.add_track("Cello")
    item = sim.add_midi_item(track, 0, 4, [(0, 1.8, 57, 100), (2, 3.8, 60, 100)])
    sim.add_bend(item, 0, 0)
    bend = sim.add_bend(item, 1, 4096)  # +1 semitone (default range 2) halfway through the first note
    sim.select_only(item)
    session.run(RENDER)
    (render,) = session.render_items("Cello")
    notes = [{"id": "a", "pitch": 57, "onset": 0.0, "offset": 0.9, "curves": {"cents": [[0, 0], [0.5, 0], [0.5, 100]]}},
             {"id": "b", "pitch": 60, "onset": 1.0, "offset": 1.9, "curves": {"cents": [[0, 100]]}}]
    np.testing.assert_allclose(audio_of(render), curved_audio(notes, 2.0), atol=1e-5)
    session.start(FOLLOW)
    session.run_for(0.5)
    sim.set_cc(item, bend, msg2=0, msg3=112)  # 112 * 128 - 8192 = 6144: +1 semitone becomes +1.5
    session.wait_for("follow: rendered")
    assert "incremental" in sim.console_text()
    cents = 6144 / 8192 * 200
    notes[0]["curves"]["cents"][-1][1] = notes[1]["curves"]["cents"][0][1] = cents
    memory = state_of(item)["notes"]
    for n, key in zip(notes, ("57@0", "60@1920")):
        n["controls"] = memory[key]["c"]
    np.testing.assert_allclose(audio_of(render), curved_audio(notes, 2.0), atol=1e-5)
    session.start(FOLLOW)
    sim.run_until(timeout=10)


def test_mpe_per_channel_bend_bends_one_note_of_a_chord(session):
    """A track set to an MPE lower zone (P_EXT:ddsp_mpe): notes on member channels 2 and 3 each take their own
    channel's bend at 48 semitones, plus the master channel's."""
    sim = session.sim
    track = sim.add_track("Strings")
    track.ext["ddsp_mpe"] = "lower"
    item = sim.add_midi_item(track, 0, 4, [(0, 3, 60, 100), (0, 3, 67, 100)])
    item.take.notes[0].chan, item.take.notes[1].chan = 1, 2
    sim.add_bend(item, 1, 341, chan=2)  # +199.8 cents at 48 semitones, on the G only
    sim.add_bend(item, 2, 2048, chan=0)  # the master channel: +50 cents on both
    sim.select_only(item)
    session.run(RENDER)
    (render,) = session.render_items("Strings")
    g = 341 / 8192 * 4800
    notes = [{"id": "c", "pitch": 60, "onset": 0.0, "offset": 1.5, "curves": {"cents": [[0, 0], [1, 0], [1, 50]]}},
             {"id": "g", "pitch": 67, "onset": 0.0, "offset": 1.5,
              "curves": {"cents": [[0, 0], [0.5, 0], [0.5, g], [1, g], [1, g + 50]]}}]
    np.testing.assert_allclose(audio_of(render), curved_audio(notes, 2.0), atol=1e-5)
