"""The Ableton Remote Script without an engine: every Live member it uses checked against the LOM reference, the
installer, and the script's pure logic (clip windows, expression choices) on the LOM simulator (tests/live_sim.py).
"""
import argparse
import ast
import inspect
import json
import os
import sys
from pathlib import Path

import pytest

import live_sim
from daw_bridge import install

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "daw_bridge" / "ableton" / "DDSPInstrument"
C74 = "https://docs.cycling74.com/apiref/lom/"
RUNTIME = "https://photonicvelocity.github.io/LiveAPI/tracks/"  # Live 12's own docstrings (help() on Live's classes)
FRAMEWORK = ("https://github.com/gluon/AbletonLive12_MIDIRemoteScripts/blob/main/_Framework/ControlSurface.py "
             "(Live 12's MIDI Remote Scripts, decompiled)")
STUBS = "https://github.com/PhotonicVelocity/LiveAPI/tree/main/stubs/"  # Live's API stubs per version, 11.0-12.3.6

# Every member of Live the script uses, transcribed from Cycling '74's LOM reference (docs.cycling74.com/apiref/lom/
# <class>, the Live 12.4.5 edition) and, for what exists only in Live's Python API (the clip envelope calls and the
# Envelope class, MidiNote objects instead of note dictionaries), from Live 12's runtime docstrings (help() on Live's
# own classes, as published at photonicvelocity.github.io/LiveAPI and midiremotescripts.structure-void.com).
# access: get / set (property), call (method, with its arguments in order). Live's methods take positional
# arguments; the names are the references'.
LOM = {
    "Song.tempo": ("get", C74 + "song", "float, 20..999 (get/set/observe)"),
    "Song.tracks": ("get", C74 + "song", "list of Track, read-only"),
    "Song.view": ("get", C74 + "song", "Song.View child"),
    "Song.create_audio_track": ("call", C74 + "song", "create_audio_track(index): index 0..len(tracks), -1 = end; "
                                                     "returns the new Track"),
    "Song.View.detail_clip": ("get", C74 + "song_view", "the clip displayed in the Detail View (get/set/observe)"),
    "Track.name": ("get set", C74 + "track", "symbol (get/set/observe)"),
    "Track.has_midi_input": ("get", C74 + "track", "bool, read-only: a MIDI track"),
    "Track.devices": ("get", C74 + "track", "list of Device, read-only"),
    "Track.clip_slots": ("get", C74 + "track", "list of ClipSlot, read-only"),
    "Track.arrangement_clips": ("get", C74 + "track", "list of Clip in the Arrangement, read-only (Live 11.0+)"),
    "Track.create_audio_clip": ("call", C74 + "track", "create_audio_clip(file_path, position): absolute path, "
                                "position in beats in [0., 1576800]; an error if the track is not an audio track, "
                                "is frozen or is being recorded into. The stubs: Live 11.3.25 and 12.0.5 add it "
                                "returning None (void), 12.2.0 returns the new Clip (12.0.0 lacks it)"),
    "Track.delete_clip": ("call", C74 + "track", "delete_clip(clip): 'Delete the given clip'; the runtime docstring "
                          "adds: raises when the clip belongs to another track"),
    "ClipSlot.has_clip": ("get", C74 + "clipslot", "bool, read-only"),
    "ClipSlot.clip": ("get", C74 + "clipslot", "Clip or None, read-only"),
    "ClipSlot.create_audio_clip": ("call", C74 + "clipslot", "create_audio_clip(path): absolute path to a valid audio "
                                   "file; throws if the slot's track is not an audio track or is frozen (the runtime "
                                   "docstring adds: or the slot is not empty)"),
    "ClipSlot.delete_clip": ("call", C74 + "clipslot", "delete_clip(): raises on an empty slot"),
    "Clip.name": ("get set", C74 + "clip", "symbol (get/set/observe)"),
    "Clip.is_midi_clip": ("get", C74 + "clip", "bool, read-only"),
    "Clip.is_arrangement_clip": ("get", C74 + "clip", "bool, read-only"),
    "Clip.start_time": ("get", C74 + "clip", "beats, read-only: the Arrangement position of an Arrangement clip"),
    "Clip.end_time": ("get", C74 + "clip", "beats, read-only: the right edge of an Arrangement clip"),
    "Clip.length": ("get", C74 + "clip", "beats, read-only: loop length when looped, else end - start marker"),
    "Clip.looping": ("get", C74 + "clip", "bool (get/set/observe)"),
    "Clip.loop_start": ("get", C74 + "clip", "beats (get/set/observe)"),
    "Clip.loop_end": ("get", C74 + "clip", "beats (get/set/observe)"),
    "Clip.start_marker": ("get", C74 + "clip", "beats (get/set/observe)"),
    "Clip.end_marker": ("get", C74 + "clip", "beats (get/set/observe)"),
    "Clip.warping": ("get set", C74 + "clip", "bool, audio clips only (get/set/observe)"),
    "Clip.file_path": ("get", C74 + "clip", "symbol, read-only: the audio file's path (audio clips)"),
    "Clip.get_notes_extended": ("call", C74 + "clip", "get_notes_extended(from_pitch, pitch_span, from_time, "
                                "time_span): the notes starting in the range (Live 11.0+); in Python a vector of "
                                "MidiNote"),
    "Clip.automation_envelope": ("call", RUNTIME + "Clip/", "automation_envelope(device_parameter): 'Returns None if "
                                 "the envelope doesn't exist. Returns None for Arrangement clips. Returns None for "
                                 "parameters from a different track.' (Python API only; not in C74's LOM)"),
    "Clip.create_automation_envelope": ("call", RUNTIME + "Clip/", "create_automation_envelope(device_parameter): "
                                        "'should only be used if the envelope doesn't exist. Raises an error if the "
                                        "envelope can't be created.' (Python API only)"),
    "MidiNote.note_id": ("get", C74 + "clip", "int: get_notes_extended's note_id key; in Python an attribute of "
                         "Live.Clip.MidiNote, unique within the clip"),
    "MidiNote.pitch": ("get", C74 + "clip", "int 0..127 (note key / MidiNote attribute)"),
    "MidiNote.start_time": ("get", C74 + "clip", "float, beats of absolute clip time"),
    "MidiNote.duration": ("get", C74 + "clip", "float, beats"),
    "MidiNote.velocity": ("get", C74 + "clip", "float 0..127"),
    "MidiNote.mute": ("get", C74 + "clip", "bool, 1 = the note is deactivated"),
    "Envelope.insert_step": ("call", RUNTIME + "Envelope/", "insert_step(start_time, length, value): 'Given a start "
                             "time, a step length and a value, creates a step in the envelope.' (Live.Envelope, "
                             "Live 12.2+; Python API only)"),
    "Envelope.value_at_time": ("call", RUNTIME + "Envelope/", "value_at_time(time): 'Returns the parameter value at "
                               "the specified time.' (Live 12.2+)"),
    "Clip.AutomationEnvelope.insert_step": ("call", STUBS + "12.1.0/Live/Clip.pyi", "insert_step(start_time, length, "
                                            "value): the same, on Live.Clip.AutomationEnvelope, the envelope class "
                                            "up to Live 12.1 (it has only these two methods)"),
    "Clip.AutomationEnvelope.value_at_time": ("call", STUBS + "12.1.0/Live/Clip.pyi", "value_at_time(time): the "
                                              "same, on Live.Clip.AutomationEnvelope (Live 11.0-12.1)"),
    "Device.name": ("get", C74 + "device", "symbol, the name in the device's title bar"),
    "Device.can_have_chains": ("get", C74 + "device", "bool, read-only: 1 for racks"),
    "Device.parameters": ("get", C74 + "device", "list of DeviceParameter, read-only (0: Device On; racks: macros)"),
    "RackDevice.can_have_chains": ("get", C74 + "device", "a RackDevice is a Device (rackdevice page): 1 for a Rack"),
    "DeviceParameter.name": ("get", C74 + "deviceparameter", "symbol, read-only (a renamed macro's name)"),
    "DeviceParameter.value": ("get set", C74 + "deviceparameter", "float in [min, max] (get/set/observe)"),
    "DeviceParameter.min": ("get", C74 + "deviceparameter", "float, read-only"),
    "DeviceParameter.max": ("get", C74 + "deviceparameter", "float, read-only"),
}
FRAMEWORK_TABLE = {
    "song": "song(): the Song (c_instance.song())",
    "show_message": "show_message(message): status bar",
    "log_message": "log_message(*message): Live's Log.txt",
    "schedule_message": "schedule_message(delay_in_ticks, callback, parameter=None): run from update_display",
    "disconnect": "disconnect(): the script is unloaded",
}
C_INSTANCE_TABLE = {  # what Live passes to create_instance; used directly only to report a too-old Live
    "song": "song(): the Song",
    "show_message": "show_message(message): status bar",
    "log_message": "log_message(message): Live's Log.txt",
}
SIMULATED = (live_sim.Song, live_sim.SongView, live_sim.Track, live_sim.ClipSlot, live_sim.Clip, live_sim.MidiNote,
             live_sim.AutomationEnvelope, live_sim.Envelope, live_sim.Device, live_sim.RackDevice,
             live_sim.DeviceParameter)


def _arguments(description: str) -> list:
    head = description.split(":")[0]
    inside = head[head.index("(") + 1:head.index(")")]
    return [a.strip().split("=")[0] for a in inside.split(",") if a.strip()]


def test_every_simulated_member_is_in_the_lom_table_with_its_access():
    for cls in SIMULATED:
        for name, kind in live_sim.public_members(cls).items():
            owner = live_sim._owner(cls, name)
            assert owner in LOM, f"{owner} is simulated but not in the LOM table"
            access, url, description = LOM[owner]
            assert url.startswith((C74, RUNTIME, STUBS))
            if kind == "method":
                assert access == "call", owner
                simulated = [p for p in inspect.signature(getattr(cls, name)).parameters if p != "self"]
                assert len(simulated) == len(_arguments(description)), (owner, simulated, description)
            else:
                assert access.startswith("get"), owner
                assert (kind == "settable") == ("set" in access.split()), owner


def test_the_table_lists_only_simulated_members():
    simulated = {live_sim._owner(cls, name) for cls in SIMULATED for name in live_sim.public_members(cls)}
    assert set(LOM) == simulated


def test_every_member_has_its_types_per_live_version():
    """live_sim.MEMBER_TYPES (from Live's API stubs) covers exactly the simulated members, and the simulator's
    classes follow it: a member appears, disappears and changes its return type with the version simulated."""
    assert set(live_sim.MEMBER_TYPES) == set(LOM)
    for member, changes in live_sim.MEMBER_TYPES.items():
        versions = [live_sim.version_tuple(v) for v, _ in changes]
        assert versions == sorted(versions) and versions[0] == (11, 0, 0), member
        kinds = {kind.rstrip("?").rstrip("[]") for _, kind in changes} - {"-", "None"}
        assert kinds <= {"float", "int", "bool", "str"} | {cls.LOM_NAME for cls in SIMULATED} | {"Song.View"}, member
    get = live_sim.member_type
    assert get("Track.create_audio_clip", "12.1.0") == "None" and get("Track.create_audio_clip", "12.2.0") == "Clip"
    assert get("Track.create_audio_clip", "12.0.0") == "-" and get("ClipSlot.create_audio_clip", "12.0.5") == "Clip"
    assert get("Clip.automation_envelope", "12.1.10") == "Clip.AutomationEnvelope?"
    assert get("Envelope.insert_step", "12.1.0") == "-" and get("Envelope.insert_step", "12.3.6") == "None"


@pytest.mark.parametrize("version", ["12.0.0", "12.1.0", "12.2.0", "12.3.6"])
def test_the_simulator_returns_what_each_live_version_returns(tmp_path, version):
    import numpy as np
    import soundfile

    soundfile.write(str(tmp_path / "a.wav"), np.zeros(4800, dtype=np.float32), 48000)
    sim = live_sim.LiveSim(version=version)
    midi = sim.song._add_midi_track("M")
    rack = midi._add_rack("DDSP Expression", ["Volume"])
    clip = midi._add_session_clip(0, 4.0)
    audio = sim.song.create_audio_track(1)
    if version == "12.0.0":
        assert not hasattr(audio, "create_audio_clip") and not hasattr(audio.clip_slots[0], "create_audio_clip")
        return
    made = audio.create_audio_clip(str(tmp_path / "a.wav"), 8.0)
    [placed] = audio.arrangement_clips
    assert placed.start_time == 8.0 and placed.file_path == str(tmp_path / "a.wav")
    assert made is (None if version < "12.2" else placed), "void before Live 12.2, the Clip from 12.2"
    assert audio.clip_slots[0].create_audio_clip(str(tmp_path / "a.wav")) is audio.clip_slots[0].clip
    envelope = clip.create_automation_envelope(rack._macro("Volume"))
    assert type(envelope).LOM_NAME == ("Envelope" if version >= "12.2" else "Clip.AutomationEnvelope")
    assert envelope.insert_step(0.0, 1.0, 64.0) is None and envelope.value_at_time(0.5) == 64.0


def _script_attributes() -> set:
    names = set()
    for path in SCRIPT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


def test_the_script_uses_every_simulated_member_and_framework_method():
    used = _script_attributes()
    for cls in SIMULATED:
        for name in live_sim.public_members(cls):
            assert name in used, f"{cls.LOM_NAME}.{name} is simulated but the script never uses it"
    for name in FRAMEWORK_TABLE:
        assert name in used and callable(getattr(live_sim.ControlSurface, name))
    assert {n for n in vars(live_sim.CInstance) if not n.startswith("_")} == set(C_INSTANCE_TABLE)


def test_live_specific_imports_are_in_one_module():
    """Only host.py imports from Live; the rest imports the standard library and the script's own modules."""
    local = {p.stem for p in SCRIPT.glob("*.py")} | {"vendor"}
    for path in SCRIPT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert (node.module or "").split(".")[0] in local | {""}, (path.name, node.module)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                roots = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                for root in roots:
                    root = root.split(".")[0]
                    if root in ("Live", "_Framework", "ableton"):
                        assert path.name == "host.py", (path.name, root)
                    else:
                        assert root in sys.stdlib_module_names, (path.name, root)


def test_the_simulator_refuses_what_live_refuses(tmp_path):
    sim = live_sim.LiveSim()
    track = sim.song._add_midi_track("M")
    clip = track._add_arrangement_clip(4.0, 4.0)
    with pytest.raises(AttributeError):
        clip.length = 3.0
    with pytest.raises(AttributeError):
        clip.no_such_member
    rack = track._add_rack("DDSP Expression", ["Volume"])
    assert clip.automation_envelope(rack._macro("Volume")) is None
    with pytest.raises(RuntimeError):
        clip.create_automation_envelope(rack._macro("Volume"))
    with pytest.raises(RuntimeError):
        track.create_audio_clip(str(tmp_path / "x.wav"), 0.0)
    with pytest.raises(RuntimeError):
        clip.warping = False


# ---------------------------------------------------------------------------------------------------- installer

def install_ableton(library, *options):
    parser = argparse.ArgumentParser()
    install.add_arguments(parser)
    args = parser.parse_args(["ableton", "--user-library", str(library), *options])
    return args.install(args)


def test_install_copies_the_script_and_vendors_the_protocol(tmp_path):
    message = install_ableton(tmp_path, "--port", "9999", "--preset", "flute")
    target = tmp_path / "Remote Scripts" / "DDSPInstrument"
    assert str(target) in message
    assert sorted(p.name for p in target.glob("*.py")) == sorted(p.name for p in SCRIPT.glob("*.py"))
    for name in ("osc.py", "protocol.py"):
        assert (target / "vendor" / "daw_bridge" / name).read_bytes() == (ROOT / "daw_bridge" / name).read_bytes()
    assert json.loads((target / "config.json").read_text()) == {"port": 9999, "preset": "flute"}
    assert not (SCRIPT / "vendor").exists(), "the vendored copy is made at install time, never in the repository"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no staging folder left behind"


def test_reinstall_keeps_the_producers_settings_and_replaces_the_code(tmp_path):
    install_ableton(tmp_path, "--port", "9999")
    target = tmp_path / "Remote Scripts" / "DDSPInstrument"
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "debounce_seconds": 2.0}))
    (target / "stale.py").write_text("raise ImportError")
    install_ableton(tmp_path, "--sample-rate", "44100")
    assert json.loads((target / "config.json").read_text()) == {"port": 9999, "debounce_seconds": 2.0,
                                                                 "sample_rate": 44100}
    assert not (target / "stale.py").exists()


def test_install_refuses_a_missing_user_library_in_one_line(tmp_path):
    with pytest.raises(install.InstallError, match="no User Library at .*--user-library"):
        install_ableton(tmp_path / "nowhere")
    with pytest.raises(install.InstallError, match="outside 1..65535"):
        install_ableton(tmp_path, "--port", "70000")


def test_install_through_the_cli(tmp_path):
    import subprocess

    out = subprocess.run([sys.executable, "-m", "daw_bridge", "install", "ableton", "--user-library", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "Remote Scripts" / "DDSPInstrument" / "__init__.py").exists()
    bad = subprocess.run([sys.executable, "-m", "daw_bridge", "install", "ableton", "--user-library",
                          str(tmp_path / "missing")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and bad.stderr.startswith("error: no User Library") and bad.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------------------- pure logic

@pytest.fixture
def script(tmp_path):
    """The installed script's modules, importable (no surface is created: these tests need no engine)."""
    install_ableton(tmp_path)
    sim = live_sim.LiveSim()
    sim.load(str(tmp_path / "Remote Scripts"))  # also creates the surface; harmless without an engine
    sim.unload()
    return sys.modules["DDSPInstrument"], sim


def test_clip_window_unrolls_an_arrangement_loop_and_cuts_notes_at_the_loop_end(script):
    package, sim = script
    clips = sys.modules["DDSPInstrument.clips"]
    track = sim.song._add_midi_track("M")
    clip = track._add_arrangement_clip(8.0, 10.0, looping=True, loop=(0.0, 4.0))
    a = clip._add_note(60, 0.0, 1.0)
    b = clip._add_note(64, 3.0, 2.0)  # crosses the loop end: cut at beat 4
    clip._add_note(67, 1.0, 1.0, mute=True)
    notes = clips.read(clip)
    assert [(n.id, n.start, n.end) for n in notes] == [
        ("n%d" % a, 0.0, 1.0), ("n%d" % b, 3.0, 4.0), ("n%d.1" % a, 4.0, 5.0), ("n%d.1" % b, 7.0, 8.0),
        ("n%d.2" % a, 8.0, 9.0)]  # the third pass is cut by the clip's end (10 beats)
    request = clips.request_notes(notes, 120.0, {})
    assert request[2]["onset"] == 2.0 and request[2]["offset"] == 2.5 and request[0]["controls"] is None


def test_session_clip_renders_from_its_start_marker(script):
    _, sim = script
    clips = sys.modules["DDSPInstrument.clips"]
    clip = sim.song._add_midi_track("M")._add_session_clip(0, 4.0)
    clip._markers = (1.0, 4.0)
    clip._add_note(60, 0.5, 0.25)  # before the start marker: silent
    c = clip._add_note(62, 1.5, 0.25)
    assert [(n.id, n.start, n.clip_time) for n in clips.read(clip)] == [("n%d" % c, 0.5, 1.5)]


def test_expression_choices_follow_edits_moves_and_new_notes(script):
    expression = sys.modules["DDSPInstrument.expression"]
    Occ = sys.modules["DDSPInstrument.clips"].Occurrence
    a, b = Occ("n1", 60, 0.0, 1.0, 100, 0.0), Occ("n2", 62, 1.0, 2.0, 100, 1.0)
    engine = {"n1": (0.1,) * 6, "n2": (0.2,) * 6}
    plan = [(0.0, 1.0), (1.0, 1.0)]
    assert expression.choose([a, b], None, {}) == {"n1": None, "n2": None}  # first render: the engine chooses
    updates = expression.lane_updates([a, b], engine, None, plan, {})
    assert updates == {0.0: (0.1,) * 6, 1.0: (0.2,) * 6}
    memos = expression.remember([a, b], engine, updates)
    stored = {0.0: (0.1000001,) * 6, 1.0: (0.2,) * 5 + (0.9,)}  # float32 rounding; the user edited one lane
    chosen = expression.choose([a, b], stored, memos)
    assert chosen["n1"] == (0.1,) * 6 and chosen["n2"] == (0.2,) * 5 + (0.9,)
    moved = Occ("n2", 62, 1.5, 2.0, 100, 1.5)
    new = Occ("n3", 64, 3.0, 3.5, 100, 3.0)
    chosen = expression.choose([a, moved, new], stored, memos)
    assert chosen["n2"] == (0.2,) * 6 and chosen["n3"] is None
    chord = Occ("n4", 55, 0.0, 1.0, 100, 0.0)  # shares n1's step: the step carries the lower note's controls
    assert expression.lane_updates([a, chord], {"n1": (0.1,) * 6, "n4": (0.7,) * 6}, None, plan[:1], {}) == \
        {0.0: (0.7,) * 6}
    lanes_now = {0.0: (0.1,) * 6, 1.0: (0.2,) * 6, 3.0: (0.2,) * 6}  # n3's start still reads n2's step
    assert expression.lane_updates([a, b, new], {**engine, "n3": (0.2,) * 6}, lanes_now, plan + [(3.0, 1.0)],
                                   memos) == {3.0: (0.2,) * 6}, "a new note gets its own step even if equal"


@pytest.mark.parametrize("version", ["12.1.0", "12.2.0"])
def test_an_arrangement_render_is_tagged_unwarped_and_replaces_the_earlier_one(script, tmp_path, version):
    """Track.create_audio_clip returns None before Live 12.2 (void in C++): the placed clip is found in the track's
    Arrangement clips by its position and file, then tagged and unwarped like the one 12.2 returns."""
    import numpy as np
    import soundfile

    placement = sys.modules["DDSPInstrument.placement"]
    sim = live_sim.LiveSim(version=version)
    midi = sim.song._add_midi_track("Lead")
    for name in ("first.wav", "second.wav"):
        soundfile.write(str(tmp_path / name), np.zeros(4800, dtype=np.float32), 48000)
    first = placement.place(sim.song, midi, None, 8.0, str(tmp_path / "first.wav"), "Riff", "[ddsp 0badc0de]")
    companion = sim.song.tracks[1]
    assert [c.name for c in companion.arrangement_clips] == ["Riff [ddsp 0badc0de]"]
    assert first is companion.arrangement_clips[0] and first._warping is False
    second = placement.place(sim.song, midi, None, 16.0, str(tmp_path / "second.wav"), "Riff", "[ddsp 0badc0de]")
    [only] = companion.arrangement_clips
    assert only is second and only.start_time == 16.0 and only._file_path == str(tmp_path / "second.wav")
    assert only.name == "Riff [ddsp 0badc0de]" and only._warping is False
