"""The Ardour round trip in the real Ardour: Debian's `ardour7-lua` (Lua sessions, Dummy backend, no GUI) runs the
installed scripts against a real engine service (`python -m engine serve` in its own process).

A session at 44.1 kHz and 100 bpm holds a MIDI region at beat 4 (2.4 s) with four notes, the first half a beat in. The headless driver
renders it with the same library code the editor action runs; the session is then reloaded and read back: the
companion track's region, its WAV, the six expression lanes. Then one lane value is edited (as a producer would) and
the region rendered again. Another session holds chords: rendered twice untouched, then with a chord's point edited.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daw_bridge.client import EngineClient

ROOT = Path(__file__).resolve().parent.parent
ARDOUR_LUA = next((shutil.which(f"ardour{v}-lua") for v in (9, 8, 7) if shutil.which(f"ardour{v}-lua")), None)
if ARDOUR_LUA is None:
    print("\n!!! Ardour is not installed (make system-deps, or apt-get install ardour): the Ardour end-to-end test "
          "is SKIPPED !!!", file=sys.stderr)
pytestmark = pytest.mark.skipif(ARDOUR_LUA is None, reason="!!! ARDOUR NOT INSTALLED: the real-DAW end-to-end test "
                                                           "did not run (make system-deps installs Debian's ardour) !!!")

RATE, BPM, REGION_BEAT, REGION_BEATS = 44100, 100.0, 4.0, 4.0
NOTES = [(60, 0.5, 0.75), (64, 1.5, 0.5), (67, 2.25, 0.5), (72, 3.0, 0.75)]  # pitch, start beat, length (beats)
TICKS = 1920  # Temporal::ticks_per_beat
SECONDS_PER_BEAT = 60.0 / BPM
EDITED_NOTE, EDITED_LANE, EDITED_VALUE = 2, 0, 0.3  # the third note's volume

BUILD = r"""
local dir, name, rate, bpm, rbeat, rlen, spec = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]),
  tonumber(arg[6]), arg[7]
local backend = AudioEngine:set_backend("None (Dummy)", "", "")
backend:set_sample_rate(rate)
local s = assert(create_session(dir, name, rate), "create_session failed")
local tm = Temporal.TempoMap.fetch_writable()
tm:set_tempo(Temporal.Tempo(bpm, bpm, 4), Temporal.timepos_t(0))
Temporal.TempoMap.update(tm)
local tracks = s:new_midi_track(ARDOUR.ChanCount(ARDOUR.DataType("midi"), 1), ARDOUR.ChanCount(ARDOUR.DataType("audio"), 2),
  true, ARDOUR.PluginInfo(), nil, nil, 1, "melody", ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
local track
for t in tracks:iter() do track = t:to_track() end
-- 7.3 binds no MIDI source factory: bouncing the empty track over the range makes a region with its own .mid file
local pos = Temporal.timepos_t.from_ticks(math.floor(rbeat * Temporal.ticks_per_beat + 0.5))
local len = Temporal.timepos_t.from_ticks(math.floor((rbeat + rlen) * Temporal.ticks_per_beat + 0.5)):samples() - pos:samples()
local region = track:bounce_range(0, len, ARDOUR.InterThreadInfo(), ARDOUR.LuaAPI.nil_proc(), false, "phrase")
assert(not region:isnil(), "bounce failed")
track:playlist():add_region(region, pos, 1, false, 0, 0, false)
local model = region:to_midiregion():midi_source(0):model()
local cmd = model:new_note_diff_command("notes")
for pitch, start, length, velocity in spec:gmatch("(%d+):([%d%.]+):([%d%.]+):(%d+)") do
  cmd:add(ARDOUR.LuaAPI.new_noteptr(1, Temporal.Beats.from_double(tonumber(start)),
    Temporal.Beats.from_double(tonumber(length)), tonumber(pitch), tonumber(velocity)))
end
model:apply_command(s, cmd)
-- arg[8]: pitch-bend points "channel:beat:raw value" (raw 0..16383, 8192 = centre), drawn as steps
for channel, beat, value in (arg[8] or ""):gmatch("(%d+):([%d%.]+):(%d+)") do
  local list = model:automation_control(Evoral.Parameter(ARDOUR.AutomationType.MidiPitchBenderAutomation,
    tonumber(channel), 0), true):alist()
  list:set_interpolation(Evoral.InterpolationStyle.Discrete)
  list:add(Temporal.timepos_t.from_ticks(math.floor(tonumber(beat) * Temporal.ticks_per_beat + 0.5)), tonumber(value),
    false, false)
end
s:save_state("", false, false, false, false, false)
print("built")
close_session()
"""

DUMP = r"""
AudioEngine:set_backend("None (Dummy)", "", "")
local s = assert(load_session(arg[1], arg[2]), "load_session failed")
local tracks = s:get_tracks()
for route in tracks:iter() do
  local regions = route:to_track():playlist():region_list()
  for r in regions:iter() do
    local path = ""
    if not r:to_audioregion():isnil() then path = r:source(0):to_filesource():path() end
    print(string.format("region\t%s\t%s\t%d\t%d\t%s", route:name(), r:name(), r:position():samples(),
      r:length():samples(), path))
  end
  for i = 0, 15 do
    local proc = route:nth_plugin(i)
    if proc:isnil() then break end
    local name = proc:to_insert():plugin(0):name()
    print(string.format("plugin\t%s\t%d\t%s", route:name(), i, name))
    if name == "DDSP Expression" then
      for k = 0, 5 do
        local al, cl = ARDOUR.LuaAPI.plugin_automation(proc, k)
        local state = proc:to_insert():to_automatable():automation_control(
          Evoral.Parameter(ARDOUR.AutomationType.PluginAutomation, 0, k), false):automation_state()
        for e in cl:events():iter() do
          print(string.format("point\t%d\t%d\t%d\t%.17g", k, state, e.when:ticks(), e.value))
        end
      end
    end
  end
end
close_session()
"""

EDIT = r"""
-- set the point at `ticks` of lane `lane` to `value`, as dragging it in the editor would
AudioEngine:set_backend("None (Dummy)", "", "")
local s = assert(load_session(arg[1], arg[2]), "load_session failed")
local lane, at, value = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local proc = s:route_by_name("melody"):nth_plugin(0)
local al, cl = ARDOUR.LuaAPI.plugin_automation(proc, lane)
local points, found = {}, false
for e in cl:events():iter() do
  local t = e.when:ticks()
  points[#points + 1] = { t, t == at and value or e.value }
  found = found or t == at
end
assert(found, "no point at " .. at)
cl:clear_list()
for i, pt in ipairs(points) do
  if i == 1 then cl:add(Temporal.timepos_t.from_ticks(pt[1]), pt[2], false, false)
  else cl:editor_add(Temporal.timepos_t.from_ticks(pt[1]), pt[2], false) end
end
s:save_state("", false, false, false, false, false)
print("edited")
close_session()
"""


EDIT_BEND = r"""
-- move the pitch-bend point of channel arg[3] at source tick arg[4] to raw value arg[5] (dragging it in the editor)
AudioEngine:set_backend("None (Dummy)", "", "")
local s = assert(load_session(arg[1], arg[2]), "load_session failed")
local channel, at, value = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local region
for r in s:route_by_name("melody"):to_track():playlist():region_list():iter() do region = r end
local list = region:to_midiregion():model():automation_control(
  Evoral.Parameter(ARDOUR.AutomationType.MidiPitchBenderAutomation, channel, 0), false):alist()
local points, found = {}, false
for e in list:events():iter() do
  local t = e.when:ticks()
  points[#points + 1] = { t, t == at and value or e.value }
  found = found or t == at
end
assert(found, "no bend point at " .. at)
list:clear_list()
for _, pt in ipairs(points) do list:add(Temporal.timepos_t.from_ticks(pt[1]), pt[2], false, false) end
s:save_state("", false, false, false, false, false)
print("edited")
close_session()
"""


ACTION = r"""
-- the editor action as Ardour's script manager loads it: its descriptor, parameters and factory
local info
function ardour(t) info = t end
dofile(arg[1])
assert(info.type == "EditorAction" and type(factory) == "function" and type(action_params) == "function")
local params = action_params()
print(string.format("action\t%s\t%s\t%s", info.name, params.preset and "preset" or "", params.seed and "seed" or ""))
"""


def run_lua(env, tmp, name, source, *args, timeout=120):
    script = tmp / f"{name}.lua"
    script.write_text(source)
    return run_ardour(env, script, *args, timeout=timeout)


def run_ardour(env, script, *args, timeout=120, check=True):
    done = subprocess.run([ARDOUR_LUA, str(script), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=script.parent)
    lines = [line for line in done.stdout.splitlines() if "\t" in line or line.strip() in ("built", "edited")]
    if check and done.returncode != 0:
        raise AssertionError(f"{script.name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return lines if check else (done.returncode, lines)


@pytest.fixture(scope="module")
def ardour(tmp_path_factory):
    """Ardour's config in a temporary folder with the scripts installed by the real installer, and an engine
    service in its own process on a free port."""
    tmp = tmp_path_factory.mktemp("ardour")
    version = Path(ARDOUR_LUA).name.split("-")[0]  # ardour7
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp / "config"), XDG_CACHE_HOME=str(tmp / "cache"),
               PYTHONPATH=str(ROOT))
    port_file = tmp / "engine.port"
    engine = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", "0", "--port-file", str(port_file),
                               "--render-dir", str(tmp / "renders")], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(tmp / "engine.log", "wb"))
    try:
        deadline = time.monotonic() + 120
        while not (port_file.exists() and port_file.read_text().strip()):
            assert engine.poll() is None, (tmp / "engine.log").read_text()
            assert time.monotonic() < deadline, "the engine did not start"
            time.sleep(0.1)
        port = int(port_file.read_text())
        installed = subprocess.run([sys.executable, "-m", "daw_bridge", "install", "ardour", "--config-dir",
                                    str(tmp / "config" / version), "--port", str(port), "--no-engine-start"],
                                   cwd=ROOT, env=env, capture_output=True, text=True)
        assert installed.returncode == 0, installed.stderr
        yield {"tmp": tmp, "env": env, "port": port, "lib": tmp / "config" / version / "scripts" / "ddsp"}
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()


def build_session(ardour, name, notes=NOTES, bends=()):
    """bends: (channel, beat from the region start, raw value 0..16383) pitch-bend steps."""
    folder = ardour["tmp"] / name
    spec = ";".join(f"{pitch}:{start}:{length}:{velocity}" for pitch, start, length, velocity in with_velocity(notes))
    bend_spec = ";".join(f"{channel}:{beat}:{value}" for channel, beat, value in bends)
    assert run_lua(ardour["env"], ardour["tmp"], "build", BUILD, folder, name, RATE, BPM, REGION_BEAT, REGION_BEATS,
                   spec, bend_spec) == ["built"]
    return folder


def render_headless(ardour, folder):
    """Run the shipped headless driver; returns its 'rendered' records."""
    lines = run_ardour(ardour["env"], ardour["lib"] / "ddsp_headless.lua", folder, f"dir={ardour['lib']}")
    rendered = [line.split("\t") for line in lines if line.startswith("rendered\t")]
    assert rendered, lines
    return [dict(zip(("name", "notes", "from_lanes", "mode", "rerendered", "replaced", "position", "samples",
                      "engine_file"), r[1:])) for r in rendered]


def read_session(ardour, folder):
    regions, plugins, lanes = [], [], {k: [] for k in range(6)}
    for line in run_lua(ardour["env"], ardour["tmp"], "dump", DUMP, folder, folder.name):
        kind, *f = line.split("\t")
        if kind == "region":
            regions.append({"track": f[0], "name": f[1], "position": int(f[2]), "length": int(f[3]), "path": f[4]})
        elif kind == "plugin":
            plugins.append((f[0], int(f[1]), f[2]))
        elif kind == "point":
            lanes[int(f[0])].append((int(f[2]), float(f[3]), int(f[1])))
    return regions, plugins, lanes


def expected_notes(notes=NOTES):
    """The notes as the engine must get them: seconds from the region start at 100 bpm, on the sample grid
    (computed here, not read from Ardour), and the absolute tick of each start (where the lanes' points belong)."""
    def seconds(beats):
        return round(beats * SECONDS_PER_BEAT * RATE) / RATE

    return [{"id": f"p{pitch}@{round(start * TICKS)}", "pitch": pitch, "onset": seconds(start),
             "offset": seconds(start + length), "velocity": velocity,
             "tick": round((REGION_BEAT + start) * TICKS)} for pitch, start, length, velocity in with_velocity(notes)]


def with_velocity(notes):
    """(pitch, start beat, length in beats[, velocity]) -> with the velocity (default 100)."""
    return [tuple(n) + (100,) * (4 - len(n)) for n in notes]


@pytest.fixture(scope="module")
def rendered(ardour):
    folder = build_session(ardour, "sess")
    records = render_headless(ardour, folder)
    regions, plugins, lanes = read_session(ardour, folder)
    return {"folder": folder, "records": records, "regions": regions, "plugins": plugins, "lanes": lanes}


def region_span():
    start = round(REGION_BEAT * SECONDS_PER_BEAT * RATE)
    return start, round((REGION_BEAT + REGION_BEATS) * SECONDS_PER_BEAT * RATE) - start


def test_audio_region_sits_at_the_midi_region(rendered):
    start, length = region_span()
    assert start == 105840 and length == 105840
    (record,) = rendered["records"]
    assert (record["mode"], record["notes"], record["from_lanes"], record["replaced"]) == ("full", "4", "0", "0")
    midi = [r for r in rendered["regions"] if r["track"] == "melody"]
    audio = [r for r in rendered["regions"] if r["track"] == "melody DDSP"]
    assert [(r["position"], r["length"]) for r in midi] == [(start, length)]
    assert len(audio) == 1
    assert (audio[0]["position"], audio[0]["length"]) == (start, length)
    assert Path(audio[0]["path"]).resolve().is_relative_to(rendered["folder"].resolve())  # the session's own copy
    info = sf.info(audio[0]["path"])
    assert (info.samplerate, info.channels, info.frames) == (RATE, 1, length)
    assert ("melody", 0, "DDSP Expression") in rendered["plugins"]


def test_wav_holds_the_notes_at_their_times(rendered):
    (audio,) = [r for r in rendered["regions"] if r["track"] == "melody DDSP"]
    wav, rate = sf.read(audio["path"], dtype="float32")
    win = rate // 50  # 20 ms
    rms = lambda a, b: float(np.sqrt(np.mean(wav[max(0, a):b].astype(np.float64) ** 2)))  # noqa: E731
    notes = expected_notes()
    assert np.max(np.abs(wav[:round(notes[0]["onset"] * rate)])) == 0.0  # silence until the first note
    for note in notes:
        onset, offset = round(note["onset"] * rate), round(note["offset"] * rate)
        assert rms(onset, onset + win) > 4 * max(rms(onset - win, onset), 1e-4), note
        assert rms(onset + win, offset - win) > 0.01, note
    # bit for bit what the engine renders for these notes (seconds computed here from beats and tempo)
    (record,) = rendered["records"]
    engine_wav, engine_rate = sf.read(record["engine_file"], dtype="float32")
    assert engine_rate == RATE and np.array_equal(wav, engine_wav[:len(wav)])


def test_lanes_hold_one_engine_value_per_note(ardour, rendered):
    notes = expected_notes()
    start, length = region_span()
    with EngineClient("127.0.0.1", ardour["port"], "test") as engine:  # the generator's choice for these notes
        reference = engine.render("ardour-test-reference", "parametric", notes, RATE, length / RATE, 0)
    for k in range(6):
        points = rendered["lanes"][k]
        assert [t for t, _, _ in points] == [n["tick"] for n in notes], k
        assert all(state == 4 for _, _, state in points)  # ARDOUR.AutoState.Play
        for (_, value, _), note in zip(points, notes):
            assert np.float32(value) == np.float32(reference.controls[note["id"]][k]), (k, note["id"])
    # and the audio is that render's, bit for bit: the notes reached the engine at the right times
    (audio,) = [r for r in rendered["regions"] if r["track"] == "melody DDSP"]
    wav, _ = sf.read(audio["path"], dtype="float32")
    ref, _ = sf.read(reference.path, dtype="float32")
    assert np.max(np.abs(wav - ref[:len(wav)])) <= 1e-6


def test_an_edited_lane_value_rerenders_that_note_only(ardour, rendered, tmp_path):
    folder = tmp_path / "sess"  # a copy: same session name, so the same clip id and the engine's cached state
    shutil.copytree(rendered["folder"], folder)
    (before_region,) = [r for r in rendered["regions"] if r["track"] == "melody DDSP"]
    before, rate = sf.read(before_region["path"], dtype="float32")
    note = expected_notes()[EDITED_NOTE]
    assert run_lua(ardour["env"], ardour["tmp"], "edit", EDIT, folder, "sess", EDITED_LANE, note["tick"],
                   EDITED_VALUE) == ["edited"]

    (record,) = render_headless(ardour, folder)
    assert (record["mode"], record["rerendered"], record["from_lanes"], record["replaced"]) == \
        ("incremental", "1", "4", "1")
    regions, _, lanes = read_session(ardour, folder)
    audio = [r for r in regions if r["track"] == "melody DDSP"]
    assert len(audio) == 1 and Path(audio[0]["path"]).resolve().is_relative_to(folder.resolve())
    for k in range(6):  # the edit survived the render; every other value is what it was
        assert len(lanes[k]) == len(rendered["lanes"][k])
        for (t, value, _), (t0, value0, _) in zip(lanes[k], rendered["lanes"][k]):
            assert t == t0
            if k == EDITED_LANE and t == note["tick"]:
                assert np.float32(value) == np.float32(EDITED_VALUE)
            else:
                assert value == value0

    after, _ = sf.read(audio[0]["path"], dtype="float32")
    diff = (after - before).astype(np.float64)
    onset, offset = round(note["onset"] * rate), round(note["offset"] * rate)
    assert np.max(np.abs(diff[:onset])) == 0.0  # everything before the note is untouched
    assert np.sqrt(np.mean(diff[onset:offset] ** 2)) > 0.01  # the note itself changed
    energy = diff ** 2
    assert energy[onset:offset + round(0.3 * rate)].sum() >= 0.99 * energy.sum()  # the note and its reverb tail
    loudness = np.sqrt(np.mean(after[onset:offset] ** 2)) / np.sqrt(np.mean(before[onset:offset] ** 2))
    assert loudness < 0.5  # volume 0.76 -> 0.3 is a drop of about 28 dB


def test_the_editor_action_loads_in_ardour(ardour):
    action = ardour["lib"].parent / "ddsp_render.lua"
    assert run_lua(ardour["env"], ardour["tmp"], "action", ACTION, action) == \
        ["action\tDDSP Render MIDI Regions\tpreset\tseed"]
    assert f'local DDSP_DIR = "{ardour["lib"]}"' in action.read_text()


def test_without_an_engine_a_render_fails_in_one_line_and_adds_no_audio(ardour):
    folder = build_session(ardour, "offline")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, lines = run_ardour(ardour["env"], ardour["lib"] / "ddsp_headless.lua", folder, f"dir={ardour['lib']}",
                               f"port={port}", check=False)
    assert status == 1
    assert lines == [f"failed\tphrase\tphrase: no_engine: no engine answers at 127.0.0.1:{port} (start it: python -m "
                     f"engine serve --port {port})"]
    regions, _, lanes = read_session(ardour, folder)
    assert [r["track"] for r in regions] == ["melody"] and not any(lanes.values())


CHORDS = [(55, 0.5, 1.0, 40), (60, 0.5, 1.0, 75), (64, 0.5, 1.0, 110), (72, 2.0, 0.5, 90), (67, 3.0, 0.75, 60),
          (71, 3.0, 0.75, 100)]  # a triad, a note, a dyad: velocities apart, so the generator tells the notes apart
CHORD_TICK = round((REGION_BEAT + 0.5) * TICKS)  # the triad's start: one point on each lane


def audio_of(ardour, folder):
    regions, _, lanes = read_session(ardour, folder)
    (audio,) = [r for r in regions if r["track"] == "melody DDSP"]
    wav, _ = sf.read(audio["path"], dtype="float32")
    return wav, lanes


def test_chords_share_a_lane_point_that_is_what_each_note_plays(ardour):
    """A lane holds one value at a time: the notes of a chord get one point, and the engine renders each of them
    with it. So rendering the untouched region again changes nothing, bit for bit, and editing the chord's point
    re-renders exactly the chord's notes."""
    folder = build_session(ardour, "chords", CHORDS)
    notes = expected_notes(CHORDS)
    (first,) = render_headless(ardour, folder)
    assert (first["mode"], first["notes"], first["from_lanes"]) == ("full", "6", "0")
    before, lanes = audio_of(ardour, folder)
    starts = sorted({n["tick"] for n in notes})
    for k in range(6):
        assert [t for t, _, _ in lanes[k]] == starts, k  # one point per start, chords included
    (second,) = render_headless(ardour, folder)  # untouched
    assert (second["mode"], second["rerendered"], second["from_lanes"], second["replaced"]) == \
        ("incremental", "0", "6", "1")
    again, lanes_again = audio_of(ardour, folder)
    assert np.array_equal(again, before) and lanes_again == lanes

    # what each note played is its start's point: the same notes with those values render the same audio
    point = {t: [np.float32(lanes[k][starts.index(t)][1]) for k in range(6)] for t in starts}
    with EngineClient("127.0.0.1", ardour["port"], "test") as engine:
        reference = engine.render("ardour-test-chords", "parametric",
                                  [{**n, "controls": [float(v) for v in point[n["tick"]]]} for n in notes], RATE,
                                  region_span()[1] / RATE, 0)
    assert all(list(np.float32(reference.controls[n["id"]])) == point[n["tick"]] for n in notes)
    ref, _ = sf.read(reference.path, dtype="float32")
    assert np.array_equal(before, ref[:len(before)])

    assert run_lua(ardour["env"], ardour["tmp"], "edit", EDIT, folder, "chords", 0, CHORD_TICK, 0.3) == ["edited"]
    (third,) = render_headless(ardour, folder)
    assert (third["mode"], third["rerendered"], third["from_lanes"]) == ("incremental", "3", "6")
    after, lanes_after = audio_of(ardour, folder)
    chord = [n for n in notes if n["tick"] == CHORD_TICK]
    onset, offset = round(chord[0]["onset"] * RATE), round(chord[0]["offset"] * RATE)
    diff = (after - again).astype(np.float64)
    assert np.max(np.abs(diff[:onset])) == 0.0 and np.sqrt(np.mean(diff[onset:offset] ** 2)) > 0.01
    energy = diff ** 2
    assert energy[onset:offset + round(0.3 * RATE)].sum() >= 0.99 * energy.sum()  # the chord and its reverb tail
    for k in range(6):  # the edit stayed; no other point moved
        for (t, value, _), (t0, value0, _) in zip(lanes_after[k], lanes[k]):
            assert t == t0 and (value == value0 or (k, t) == (0, CHORD_TICK)), (k, t)
    assert np.float32(lanes_after[0][starts.index(CHORD_TICK)][1]) == np.float32(0.3)


BENDS = [(1, 1.75, 12288), (1, 2.125, 8192)]  # +100 cents (default range 2 semitones) inside the second note, then back


def test_pitch_bend_bends_its_note_and_an_edit_of_it_rerenders_that_note(ardour):
    """The region's pitch bend (its MIDI model's controller list, on the notes' channel 2) reaches the engine as
    the second note's curve; the audio is the engine's render of the notes with that curve (computed here from
    beats and tempo). Dragging the bend point to the top re-renders that note only, incrementally."""
    folder = build_session(ardour, "bends", NOTES, BENDS)
    notes = expected_notes()
    bent = notes[1]
    step = round(1.75 * SECONDS_PER_BEAT * RATE) / RATE - bent["onset"]  # 0.15 s into the note

    def reference(cents, clip):
        sent = [{k: v for k, v in n.items() if k != "tick"} for n in notes]
        sent[1]["curves"] = {"cents": [[0.0, 0.0], [step, 0.0], [step, cents]]}
        with EngineClient("127.0.0.1", ardour["port"], "test") as engine:
            result = engine.render(clip, "parametric", sent, RATE, region_span()[1] / RATE, 0)
        return sf.read(result.path, dtype="float32")[0]

    (first,) = render_headless(ardour, folder)
    assert (first["mode"], first["notes"]) == ("full", "4")
    before, _ = audio_of(ardour, folder)
    assert np.max(np.abs(before - reference(100.0, "ardour-test-bend")[:len(before)])) <= 1e-6
    tick = round(1.75 * TICKS)  # the bend point, in ticks from the source start (the region starts the source)
    assert run_lua(ardour["env"], ardour["tmp"], "edit_bend", EDIT_BEND, folder, "bends", 1, tick, 16383) == \
        ["edited"]
    (second,) = render_headless(ardour, folder)
    assert (second["mode"], second["rerendered"]) == ("incremental", "1")
    after, _ = audio_of(ardour, folder)
    assert np.max(np.abs(after - reference(8191 / 8192 * 200, "ardour-test-bend-2")[:len(after)])) <= 1e-6
    onset = round((bent["onset"] + step) * RATE)
    assert np.max(np.abs(after[:onset - round(0.01 * RATE)] - before[:onset - round(0.01 * RATE)])) == 0.0
