"""The Ableton Remote Script, installed by `python -m daw_bridge install ableton` and loaded unchanged into the LOM
simulator (tests/live_sim.py), against the real engine service on a real UDP socket (parametric preset).

What Live itself would do is simulated: see tests/live_sim.py and docs/ableton.md for what that leaves unverified.
"""
import argparse
import json
import re
import socket

import numpy as np
import pytest
import soundfile

import live_sim
from daw_bridge import install
from engine.service import Service, ServiceConfig
from test_ableton_lom import LOM

MACROS = ["Volume", "Volume Fluctuation", "Volume Peak Position", "Vibrato", "Brightness", "Attack Noise", "Render",
          "Follow"]
PITCHES = [60, 62, 64, 65, 67, 69, 71, 72, 74, 72, 71, 69, 67, 65, 64, 62]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    service = Service(ServiceConfig(port=0, render_dir=tmp_path_factory.mktemp("renders"))).start()
    yield service
    service.stop()


def load_script(tmp_path, port, **settings):
    """Install the script into a fresh User Library and return (sim, surface) with a MIDI track "Lead" holding a
    DDSP Expression rack."""
    parser = argparse.ArgumentParser()
    install.add_arguments(parser)
    args = parser.parse_args(["ableton", "--user-library", str(tmp_path), "--port", str(port)])
    args.install(args)
    config = tmp_path / "Remote Scripts" / "DDSPInstrument" / "config.json"
    tempo = settings.pop("tempo", 120.0)
    version = settings.pop("version", live_sim.DEFAULT_VERSION)
    config.write_text(json.dumps({**json.loads(config.read_text()), "debounce_seconds": 0.3, **settings}))
    sim = live_sim.LiveSim(tempo=tempo, version=version)
    track = sim.song._add_midi_track("Lead")
    track._add_device("Operator")
    rack = track._add_rack("DDSP Expression", MACROS)
    return sim, track, rack


def start(sim, tmp_path):
    surface = sim.load(str(tmp_path / "Remote Scripts"))
    sim.tick(2)
    return surface


def press(sim, rack, macro="Render"):
    rack._macro(macro).value = 127.0
    sim.tick()


def placed(sim, count):
    return lambda: sum("placed" in line for line in sim.log) >= count


def settle(sim, surface):
    sim.run_until(lambda: not surface.jobs and not any(s.writing or s.session or s.due for s in surface.states),
                  timeout=30, what="idle")


def dominant_hz(audio, rate, start, end):
    segment = audio[int(start * rate):int(end * rate)] * np.hanning(int(end * rate) - int(start * rate))
    spectrum = np.abs(np.fft.rfft(segment, 8 * len(segment)))
    return np.argmax(spectrum) * rate / (8 * len(segment))


def assert_holds_notes(path, notes_seconds):
    audio, rate = soundfile.read(path)
    for pitch, onset, offset in notes_seconds:
        expected = 440.0 * 2 ** ((pitch - 69) / 12)
        found = dominant_hz(audio, rate, onset + 0.04, offset - 0.03)
        assert abs(found / expected - 1) < 0.03, (pitch, onset, found, expected)
    return audio, rate


def test_session_clip_renders_into_the_companion_slot_with_one_step_per_note(engine, tmp_path):
    sim, track, rack = load_script(tmp_path, engine.port)
    clip = track._add_session_clip(2, 8.0, name="Melody")
    for beat in range(8):
        clip._add_note(PITCHES[beat], beat, 0.5)
    surface = start(sim, tmp_path)
    sim.song.view._detail_clip = clip
    press(sim, rack)
    assert rack._macro("Render").value == 0.0, "the script turns the Render macro back"
    sim.run_until(placed(sim, 1), what="render placed")
    settle(sim, surface)

    companion = sim.song.tracks[1]
    assert companion.name == "Lead (DDSP)" and not companion.has_midi_input
    audio_clip = companion.clip_slots[2].clip
    assert re.fullmatch(r"Melody \[ddsp [0-9a-f]{8}\]", audio_clip.name) and audio_clip._warping is False
    audio, rate = assert_holds_notes(audio_clip._file_path, [(PITCHES[b], b * 0.5, b * 0.5 + 0.25) for b in range(8)])
    assert rate == 48000 and len(audio) == 4 * 48000, "8 beats at 120 bpm, sample 0 at the clip start"

    for name in MACROS[:6]:
        steps = clip._envelope(name)._steps
        assert [(s[0], s[1]) for s in steps] == [(float(b), b + 1.0) for b in range(8)], name
        assert all(0.0 <= s[2] <= 127.0 for s in steps)
    assert clip._envelope("Render") is None and clip._envelope("Follow") is None
    assert any("DDSP: placed 'Melody'" in m for m in sim.status)

    press(sim, rack)  # render again: the render is replaced, and nothing changed, so nothing is re-made
    sim.run_until(placed(sim, 2), what="second render placed")
    renders = [s.clip for s in companion.clip_slots if s.has_clip]
    assert len(renders) == 1 and renders[0] is not audio_clip
    assert "(incremental, 0 notes re-rendered" in [line for line in sim.log if "placed" in line][-1]
    assert np.array_equal(soundfile.read(renders[0]._file_path)[0], audio)
    allowed = {(member, access) for member, (kinds, _, _) in LOM.items() for access in kinds.split()}
    assert sim.accessed - allowed == set(), \
        "the script used Live only as the LOM reference allows"
    sim.unload()


def test_editing_one_step_re_renders_only_that_clip_and_only_around_that_note(engine, tmp_path):
    sim, track, rack = load_script(tmp_path, engine.port)
    clip = track._add_session_clip(0, 16.0, name="Verse")
    for beat in range(16):
        clip._add_note(PITCHES[beat], beat, 0.5)
    other = track._add_session_clip(1, 4.0, name="Other")
    for beat in range(4):
        other._add_note(PITCHES[beat], beat, 0.5)
    surface = start(sim, tmp_path)
    press(sim, rack, "Follow")  # follow mode renders every clip of the track once
    sim.run_until(placed(sim, 2), what="both clips rendered")
    settle(sim, surface)
    companion = sim.song.tracks[1]
    first, other_render = companion.clip_slots[0].clip, companion.clip_slots[1].clip
    before, rate = soundfile.read(first._file_path)
    renders = sum("rendering" in line for line in sim.log)

    brightness = clip._envelope("Brightness")
    old = brightness.value_at_time(4.0005)
    brightness._insert(4.0, 1.0, 127.0 if old < 64 else 0.0)  # the producer redraws note 5's brightness step
    sim.run_until(placed(sim, 3), what="re-render after the edit")
    settle(sim, surface)

    assert sum("rendering" in line for line in sim.log) == renders + 1, "only the edited clip re-renders"
    assert "(incremental, 1 notes re-rendered" in [l for l in sim.log if "placed" in l][-1]
    assert companion.clip_slots[1].clip is other_render
    after = soundfile.read(companion.clip_slots[0].clip._file_path)[0]
    difference = np.abs(after - before)
    onset, offset, tail = 2.0, 2.25, 1.2  # note 5 (seconds), the preset's reverb length
    assert difference[:int((onset - 0.1) * rate)].max() < 1e-5, "nothing changes before the note"
    assert difference[int((offset + tail + 0.2) * rate):].max() < 1e-5, "nor after its reverb tail"
    assert difference[int(onset * rate):int(offset * rate)].max() > 1e-3
    assert brightness.value_at_time(4.0005) != old and len(brightness._steps) == 16

    clip._add_note(60, 15.5, 0.25)  # a note edit re-renders too; the new note gets its own step
    sim.run_until(placed(sim, 4), what="re-render after a note edit")
    settle(sim, surface)
    assert [s[0] for s in clip._envelope("Volume")._steps][-1] == 15.5
    assert len([s for s in companion.clip_slots if s.has_clip]) == 2
    sim.unload()


def test_a_rack_missing_some_macros_renders_once_and_writes_the_lanes_it_has(engine, tmp_path):
    sim, track, rack = load_script(tmp_path, engine.port)
    track._devices.remove(rack)
    rack = track._add_rack("DDSP Expression: parametric", ["Vibrato", "Brightness", "Follow"])
    clip = track._add_session_clip(0, 4.0, name="Short")
    for beat in range(4):
        clip._add_note(PITCHES[beat], beat, 0.5)
    surface = start(sim, tmp_path)
    assert any("no macro named 'Volume'" in line and "'Render'" in line for line in sim.log)
    press(sim, rack, "Follow")
    sim.run_until(placed(sim, 1), what="render placed")
    settle(sim, surface)
    sim.tick(100, sleep=0.01)  # a second with nothing edited
    assert sum("rendering" in line for line in sim.log) == 1, "follow mode does not loop on missing lanes"
    assert len(clip._envelope("Vibrato")._steps) == 4 and clip._envelope("Volume") is None
    sim.unload()


def test_what_cannot_be_rendered_or_placed_is_reported_and_left_alone(engine, tmp_path):
    sim, track, rack = load_script(tmp_path, engine.port)
    empty = track._add_session_clip(0, 4.0, name="Empty")
    clip = track._add_session_clip(1, 4.0, name="Busy slot")
    clip._add_note(60, 0.0, 1.0)
    companion = sim.song.create_audio_track(1)
    companion._name = "Lead (DDSP)"
    soundfile.write(str(tmp_path / "mine.wav"), np.zeros(4800, dtype=np.float32), 48000)
    mine = companion._slots[1]._clip = companion._audio_clip(str(tmp_path / "mine.wav"), False, 0.0)
    mine._name = "my take"
    surface = start(sim, tmp_path)
    sim.song.view._detail_clip = empty
    press(sim, rack)
    sim.run_until(lambda: any("'Empty' has no notes to render" in m for m in sim.status), what="no-notes message")
    sim.song.view._detail_clip = clip
    press(sim, rack)
    sim.run_until(lambda: any("could not place it" in line for line in sim.log), what="placement refused")
    assert companion.clip_slots[1].clip is mine, "the producer's clip in the slot is left alone"
    assert "slot 2 of track 'Lead (DDSP)' holds a clip that is not this clip's render" in sim.status[-1]
    track._devices.remove(rack)
    rack = track._add_rack("DDSP Expression: no-such-preset", MACROS)
    sim.tick(120, sleep=0.01)  # the script looks at the racks again (once a second)
    press(sim, rack)
    sim.run_until(lambda: any("render of 'Busy slot' failed" in m for m in sim.status), what="unknown preset")
    assert "no-such-preset" in sim.status[-1] and "unknown_preset" in sim.status[-1]
    settle(sim, surface)
    sim.unload()


@pytest.mark.parametrize("version", ["12.1.0", "12.2.0"])  # Track.create_audio_clip: void before 12.2
def test_arrangement_clip_lands_at_its_position_and_moves_with_the_clip(engine, tmp_path, version):
    sim, track, rack = load_script(tmp_path, engine.port, tempo=100.0, version=version)
    clip = track._add_arrangement_clip(8.0, 8.0, name="Riff", looping=True, loop=(0.0, 4.0))
    for beat, pitch in enumerate([57, 64, 60, 67]):
        clip._add_note(pitch, beat, 0.75)
    surface = start(sim, tmp_path)
    press(sim, rack)
    sim.run_until(placed(sim, 1), what="render placed")
    settle(sim, surface)
    companion = sim.song.tracks[1]
    [audio_clip] = companion.arrangement_clips
    assert audio_clip.start_time == 8.0 and audio_clip._warping is False
    assert re.fullmatch(r"Riff \[ddsp [0-9a-f]{8}\]", audio_clip.name)
    beat = 60.0 / 100.0
    assert_holds_notes(audio_clip._file_path, [(p, (k * 4 + b) * beat, (k * 4 + b + 0.75) * beat)
                                               for k in range(2) for b, p in enumerate([57, 64, 60, 67])])
    assert clip.automation_envelope(rack._macro("Volume")) is None, "Arrangement clips have no clip envelopes"

    clip._start = 16.0  # the producer drags the clip two bars later and renders again
    press(sim, rack)
    sim.run_until(placed(sim, 2), what="render after the move")
    [moved] = companion.arrangement_clips
    assert moved.start_time == 16.0 and moved is not audio_clip, "the earlier render was replaced"
    assert moved.name == audio_clip.name and moved._warping is False
    sim.unload()


def test_engine_down_gives_a_clear_message_and_never_blocks(tmp_path):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    sim, track, rack = load_script(tmp_path, port, connect_timeout=1.0)
    clip = track._add_session_clip(0, 4.0, name="Solo")
    clip._add_note(60, 0.0, 1.0)
    surface = start(sim, tmp_path)
    assert surface.link.sock.gettimeout() == 0.0, "the engine socket is non-blocking"
    press(sim, rack)
    sim.run_until(lambda: any("render of" in line and "failed" in line for line in sim.log), timeout=20,
                  what="failure message")
    expected = "no engine answered at 127.0.0.1:%d within 1 s: start it with `python -m engine serve`" % port
    assert any(expected in line for line in sim.log)
    assert any(expected in message for message in sim.status)
    ticks = sim.ticks
    press(sim, rack)  # Live carries on: the next press is handled and fails the same way
    sim.run_until(lambda: sum("render of" in line for line in sim.log) == 2, timeout=20, what="second failure")
    assert sim.ticks > ticks + 5 and len(sim.song.tracks) == 1, "no companion track without a render"
    sim.unload()

