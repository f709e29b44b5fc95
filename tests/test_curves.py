"""Note curves: pitch bend, CC11, pressure, CC74 and MPE from MIDI files (built with mido here) to the rendered
audio, with known answers measured from the audio."""
import json
import math
from dataclasses import replace

import mido
import numpy as np
import pytest
import torch

from daw_bridge.curves import clip_points, value_at
from daw_bridge.midifile import read_midi_tracks
from engine.curves import apply_curves, sample_curve, shift_centroid
from engine.expression import extract_controls
from engine.incremental import RenderCache
from engine.notes import Clip, Note, NoteError, clips_from_midi
from engine.render import expression_document, read_expression, render_clip

SR = 48000
TICKS = 480  # per beat; 120 bpm: a beat is 0.5 s


def midi_file(path, tracks):
    """tracks: [[(beat, mido.Message), ...], ...] -> path (120 bpm)."""
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for beat, message in sorted(events, key=lambda e: e[0]):
            tick = int(round(beat * TICKS))
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))
    return path


def note(pitch, start, end, channel=0, velocity=100):
    return [(start, mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)),
            (end, mido.Message("note_off", note=pitch, velocity=0, channel=channel))]


def cc(beat, control, value, channel=0):
    return (beat, mido.Message("control_change", control=control, value=value, channel=channel))


def bend(beat, value, channel=0):
    return (beat, mido.Message("pitchwheel", pitch=value, channel=channel))


def rpn(beat, number, value, channel=0, fine=None):
    events = [cc(beat, 101, 0, channel), cc(beat, 100, number, channel), cc(beat, 6, value, channel)]
    return events + ([cc(beat, 38, fine, channel)] if fine is not None else [])


def peak_cents(audio, reference_hz, low=-150.0, high=450.0):
    """Frequency of the strongest spectral peak between reference x 2^(low/1200) and x 2^(high/1200), in cents
    from `reference_hz` (Hann window, 8x zero padding, parabolic interpolation)."""
    n = len(audio)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(n), 8 * n))
    hz = np.fft.rfftfreq(8 * n, 1.0 / SR)
    band = np.nonzero((hz > reference_hz * 2 ** (low / 1200)) & (hz < reference_hz * 2 ** (high / 1200)))[0]
    k = band[np.argmax(spectrum[band])]
    a, b, c = np.log(spectrum[k - 1:k + 2])
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return 1200 * math.log2((k + offset) * SR / (8 * n) / reference_hz)


def level_db(x):
    return 10 * math.log10(float(np.mean(np.square(x.astype(np.float64)))) + 1e-30)


def test_curve_values_are_linear_held_and_stepped():
    points = ((0.0, 0.0), (1.0, 100.0), (1.0, -50.0), (2.0, -50.0))
    t = np.array([-1.0, 0.0, 0.5, 0.999, 1.0, 1.5, 3.0])
    np.testing.assert_allclose(sample_curve(points, t), [0, 0, 50, 99.9, -50, -50, -50])
    assert [value_at(points, x) for x in t] == pytest.approx([0, 0, 50, 99.9, -50, -50, -50])
    assert clip_points(((-1.0, 0.0), (1.0, 100.0), (3.0, 100.0)), 2.0) == ((0.0, 50.0), (1.0, 100.0), (2.0, 100.0))


@pytest.mark.parametrize("curves, message", [
    ({"cents": [[0, 10000]]}, "outside"),
    ({"gain_db": [[0, 30]]}, "outside"),
    ({"brightness": [[0, 1.5]]}, "outside"),
    ({"cents": [[0, float("nan")]]}, "finite"),
    ({"pitch": [[0, 1]]}, "unknown curve"),
    ({"cents": [0, 1]}, "pairs"),
    ({"cents": [[0, 0]] * 20001}, "at most 20000"),
    ({"cents": [[0, 0], [1.5, 100]]}, "outside the note"),
])
def test_bad_curves_are_one_line_errors(curves, message):
    with pytest.raises(NoteError, match=message):
        Clip.from_data([dict(pitch=60, onset=0, offset=1, curves=curves)])


def test_curves_outside_the_note_are_clipped_with_repair_also_after_a_cut():
    clip = Clip.from_data([dict(pitch=60, onset=0, offset=2, id="a", curves={"cents": [[0, 0], [2, 200]]}),
                           dict(pitch=60, onset=1, offset=3, id="b")], repair=True)
    a = clip.notes[0]
    assert a.offset == 1 and a.curve("cents") == ((0.0, 0.0), (1.0, 100.0))
    assert any("clipped" in r for r in clip.repairs)


def test_a_200_cent_bend_sounds_200_cents_up(tmp_path, parametric):
    """Bend up to the top (+8191 at the default 2 semitones) halfway through an A4: the second half is measured
    within 10 cents of B4, the first half at A4; through a neural preset too."""
    from engine.presets import load_preset

    path = midi_file(tmp_path / "bend.mid", [note(69, 0, 4) + [bend(0, 0), bend(2, 8191)]])
    (clip,) = clips_from_midi(path)
    assert clip.notes[0].curve("cents") == ((0.0, 0.0), (1.0, 0.0), (1.0, pytest.approx(199.976, abs=1e-3)))
    for preset in (parametric, load_preset("flute")):
        dry = render_clip(clip, preset, SR).voices[0].dry
        assert abs(peak_cents(dry[int(0.2 * SR):int(0.95 * SR)], 440.0)) < 10
        assert abs(peak_cents(dry[int(1.1 * SR):int(1.9 * SR)], 440.0) - 200) < 10


def test_a_cc11_ramp_sets_the_level_40_log10_of_v_over_127(tmp_path, parametric):
    """CC11 steps 127 -> 32 over a note: each stretch's level, against the same note without CC11, is
    40 log10(v / 127) dB (GM2) within 0.3 dB."""
    values = [127, 100, 64, 32]
    steps = [cc(i, 11, v) for i, v in enumerate(values)]  # one value per beat (0.5 s)
    plain = clips_from_midi(midi_file(tmp_path / "plain.mid", [note(60, 0, 4)]))[0]
    ramp = clips_from_midi(midi_file(tmp_path / "ramp.mid", [note(60, 0, 4) + steps]))[0]
    controls = {plain.notes[0].id: (0.7, 0.0, 0.0, 0.0, 0.4, 0.3)}  # steady: the level is the curve's alone
    a = render_clip(plain.with_controls(controls), parametric, SR).voices[0].dry
    b = render_clip(ramp.with_controls(controls), parametric, SR).voices[0].dry
    for i, v in enumerate(values):
        stretch = slice(int((0.5 * i + 0.1) * SR), int((0.5 * i + 0.4) * SR))
        assert level_db(b[stretch]) - level_db(a[stretch]) == pytest.approx(40 * math.log10(v / 127), abs=0.3)


def test_mpe_chord_bends_only_the_bent_note(tmp_path, parametric):
    """Lower zone (MCM on channel 1), C4 on channel 2 and G4 on channel 3; channel 3 bends +2 semitones at the
    default 48-semitone member range: G4 sounds as A4, C4 stays. The zone's channels make one clip."""
    events = rpn(0, 6, 15) + note(60, 0, 4, channel=1) + note(67, 0, 4, channel=2) + [bend(0, 0, 2), bend(1, 341, 2)]
    path = midi_file(tmp_path / "mpe.mid", [events])
    (clip,) = clips_from_midi(path)
    by_pitch = {n.pitch: n for n in clip.notes}
    assert by_pitch[60].curves == ()
    assert by_pitch[67].curve("cents")[-1][1] == pytest.approx(341 / 8192 * 4800, abs=1e-3)
    result = render_clip(clip, parametric, SR)
    dry = {v.notes[0].pitch: v.dry for v in result.voices}
    late = slice(int(0.8 * SR), int(1.9 * SR))
    assert abs(peak_cents(dry[60][late], 261.6256)) < 10
    assert abs(peak_cents(dry[67][late], 391.9954) - 200) < 10


def test_mpe_master_bend_adds_to_every_member_and_rpn0_sets_the_member_range(tmp_path):
    events = (rpn(0, 6, 3) + rpn(0, 0, 24, channel=1) + note(60, 1, 3, channel=1) + note(64, 1, 3, channel=2)
              + [bend(0, 4096, 0), bend(0, 4096, 1)])
    (track,) = read_midi_tracks(midi_file(tmp_path / "m.mid", [events]))
    cents = {n["pitch"]: n["curves"]["cents"] for n in track["notes"]}
    assert cents[60] == [[0.0, pytest.approx(100 + 1200)]]  # master 2 st x 0.5 + member 24 st x 0.5
    assert cents[64] == [[0.0, pytest.approx(100)]]  # RPN 0 on a member sets every member's range; no own bend


def test_bad_bend_range_and_misplaced_mcm_are_repaired_and_said(tmp_path):
    path = midi_file(tmp_path / "bad.mid", [rpn(0, 0, 120) + rpn(0, 6, 15, channel=4) + note(60, 0, 2)
                                            + note(62, 0, 2, channel=1) + [bend(0, 8191), bend(0, 8191, 1)]])
    clips = clips_from_midi(path)
    repairs = " | ".join(r for c in clips for r in c.repairs)
    assert "clamped to 96" in repairs and "channel 5" in repairs and "ignored" in repairs
    by_pitch = {n.pitch: n for c in clips for n in c.notes}
    assert by_pitch[60].curve("cents")[0][1] == pytest.approx(9600 * 8191 / 8192, abs=0.01)
    assert by_pitch[62].curve("cents")[0][1] == pytest.approx(200 * 8191 / 8192, abs=0.01)  # no zone: 2 semitones
    assert len(clips) == 2  # not merged: the MCM was ignored
    with pytest.raises(NoteError, match="ignored: zones are set on channel 1"):
        clips_from_midi(path, repair=False)


def test_pressure_and_slide_and_plain_files_have_no_curves(tmp_path):
    events = note(60, 0, 2) + note(64, 2, 4) + [(1, mido.Message("aftertouch", value=127)), cc(3, 74, 127)]
    (track,) = read_midi_tracks(midi_file(tmp_path / "p.mid", [events]))
    first, second = track["notes"]
    assert first["curves"] == {"gain_db": [[0.0, 0.0], [0.5, 0.0], [0.5, 12.0]]}
    assert second["curves"]["gain_db"] == [[0.0, 12.0]]
    assert second["curves"]["brightness"] == [[0.0, 0.0], [0.5, 0.0], [0.5, pytest.approx(0.246094)]]
    (plain,) = read_midi_tracks(midi_file(tmp_path / "q.mid", [note(60, 0, 2) + [cc(0, 7, 90), bend(0, 0)]]))
    assert "curves" not in plain["notes"][0]


def test_gain_and_brightness_curves_move_the_measured_controls_by_their_amount(parametric):
    notes = [Note(57, 0.0, 1.0, id="a")]
    controls = torch.tensor([[0.6, 0.1, 0.3, 0.0, 0.4, 0.5]])
    params = parametric.synthesis.generate(notes, controls, 260)
    before = extract_controls(params, notes)[0]
    curved = [replace(notes[0], curves=(("gain_db", ((0.0, -6.0),)), ("brightness", ((0.0, 0.1),))))]
    after = extract_controls(apply_curves(params, curved), curved)[0]
    assert float(after[0] - before[0]) == pytest.approx(-0.1, abs=1e-4)  # volume: dB / 60
    assert float(after[4] - before[4]) == pytest.approx(0.1, abs=2e-3)  # brightness
    assert torch.equal(after[[1, 2, 3]], before[[1, 2, 3]])
    assert apply_curves(params, notes) is params


def test_shift_centroid_stops_at_reach():
    h = np.zeros((2, 10))
    h[:, :4] = 0.25  # centroid 2.5, harmonics 1..4 audible
    out = shift_centroid(h, np.array([10.0, -10.0]))
    centroids = (out * np.arange(1, 11)).sum(1)
    assert centroids[0] == pytest.approx(4, abs=1e-3) and centroids[1] == pytest.approx(1, abs=1e-3)
    assert (out[:, 4:] == 0).all()


def test_expression_file_carries_curves_and_the_sounding_controls(tmp_path, parametric):
    clip = Clip.from_data([dict(pitch=60, onset=0, offset=1, id="a"), dict(pitch=62, onset=1, offset=2, id="b",
                                                                           curves={"gain_db": [[0, -12]]})])
    result = render_clip(clip, parametric, SR)
    from engine.curves import sounding_controls

    document = expression_document([clip], result.controls, sounding_controls(result.voices))
    path = tmp_path / "e.json"
    path.write_text(json.dumps(document))
    by_id = {e["id"]: e for e in document["notes"]}
    assert by_id["b"]["curves"] == {"gain_db": [[0.0, -12.0]]} and "curves" not in by_id["a"]
    assert by_id["b"]["sounding"]["volume"] == pytest.approx(by_id["b"]["controls"]["volume"] - 0.2, abs=1e-3)
    assert by_id["a"]["sounding"]["volume"] == pytest.approx(by_id["a"]["controls"]["volume"], abs=1e-3)
    by_id["a"]["curves"] = {"cents": [[0, 0], [0.5, 100]]}
    del by_id["b"]["curves"]
    path.write_text(json.dumps(document))
    plain = Clip.from_data([dict(pitch=60, onset=0, offset=1, id="a"), dict(pitch=62, onset=1, offset=2, id="b")])
    (edited,) = read_expression(path, [plain])
    assert edited.notes[0].curve("cents") == ((0.0, 0.0), (0.5, 100.0)) and edited.notes[1].curves == ()
    by_id["a"]["curves"] = {"cents": [[0, 20000]]}
    path.write_text(json.dumps(document))
    with pytest.raises(NoteError, match="outside"):
        read_expression(path, [plain])


def test_editing_a_curve_rerenders_only_around_its_note(parametric):
    notes = [Note(60 + (i % 5), 0.5 * i + (0.1 if i % 4 == 0 else 0.0), 0.5 * i + 0.45, 90, f"n{i}")
             for i in range(16)]
    clip = Clip(notes).checked()
    cache = RenderCache()
    first = cache.render("c", clip, parametric, SR)
    controls = dict(first.controls)
    fixed = Clip([replace(n, controls=controls[n.id]) for n in clip.notes]).checked()
    cache.render("c", fixed, parametric, SR)
    bent = fixed.with_curves({"n8": (("cents", ((0.0, 0.0), (0.2, 150.0))),)})
    rendered = cache.render("c", bent, parametric, SR)
    assert rendered.mode == "incremental" and "n8" in rendered.rerendered and "n2" not in rendered.rerendered
    full = render_clip(bent, parametric, SR).audio
    assert np.abs(rendered.audio - full).max() < 1e-5
    start, stop = rendered.changed
    assert 4.1 - 0.05 < start / SR < 4.1 and stop / SR < 0.5 * 9 + parametric.reverb.tail_seconds + 0.1


def test_curves_travel_in_chunks_and_the_service_renders_them(tmp_path, parametric):
    """A MIDI file's bends, CC11 and a 2000-point curve go through `daw_bridge send`'s client to the engine service
    in /ddsp/curves chunks (each under 4 KB); the file equals a local render; an edit of one curve re-renders
    incrementally around its note."""
    from daw_bridge import protocol as p
    from service_fixtures import client_for, running_service

    events = note(69, 0, 2) + note(72, 2, 4) + [bend(0, 0), bend(1, 8191), cc(2.5, 11, 64)]
    (track,) = read_midi_tracks(midi_file(tmp_path / "s.mid", [events]))
    sent = [dict(n) for n in track["notes"]]
    sent[1]["curves"]["brightness"] = [[i / 2000, 0.2 * math.sin(i / 50)] for i in range(2000)]
    chunks = p.curve_chunks(1, sent, 1)
    assert len(chunks) > 3 and max(len(c) for c in chunks) <= p.MAX_DATAGRAM
    parsed = p.decode(chunks[-1], p.REQUESTS)[0]
    assert parsed.address == p.CURVES and parsed.fields["curve"] == "brightness"
    assert parsed.fields["chunk"] == len(chunks)  # numbered after the one notes chunk
    clip = Clip.from_data(sent)
    import soundfile as sf

    with running_service(tmp_path) as service:
        client = client_for(service)
        first = client.render("curved", "parametric", sent, sample_rate=22050)
        audio, _ = sf.read(first.path, dtype="float32")
        assert np.abs(audio - render_clip(clip, parametric, 22050).audio).max() < 1e-5
        sent[0]["curves"]["cents"][-1][1] = 100.0
        second = client.render("curved", "parametric", sent, sample_rate=22050)
        audio, _ = sf.read(second.path, dtype="float32")
    assert second.mode == "incremental" and sent[0]["id"] in second.rerendered
    assert np.abs(audio - render_clip(Clip.from_data(sent), parametric, 22050).audio).max() < 1e-5


def test_interpolated_controller_lines_play_as_10_ms_steps():
    from daw_bridge.midi_expression import Event, expand_ramps

    events = expand_ramps([(Event(0.0, 0, "cc", 11, 0), True), (Event(0.1, 0, "cc", 11, 100), False),
                           (Event(0.05, 1, "cc", 11, 50), True)])  # alone on its lane: nothing to ramp to
    lane = [(round(e.time, 6), e.value) for e in events if e.channel == 0]
    assert lane == [(round(k / 100, 6), 10 * k) for k in range(11)]
    assert [(e.time, e.value) for e in events if e.channel == 1] == [(0.05, 50)]


def test_the_command_line_reads_mpe_without_an_mcm_and_writes_curves_and_sounding(tmp_path):
    """`render --mpe lower` reads a recording without an MPE configuration message as a lower zone (48-semitone
    member bends); the expression file it writes carries each note's curves and sounding controls."""
    import subprocess
    import sys

    from conftest import ROOT

    events = note(60, 0, 2, channel=1) + note(64, 0, 2, channel=2) + [bend(0, 341, 2)]
    path = midi_file(tmp_path / "rec.mid", [events])
    expression = tmp_path / "e.json"
    run = subprocess.run([sys.executable, "-m", "engine", "render", str(path), "-o", str(tmp_path / "o.wav"),
                          "--preset", "parametric", "--expression", str(expression), "--mpe", "lower", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    notes = {n["pitch"]: n for n in json.loads(expression.read_text())["notes"]}
    assert notes[64]["curves"] == {"cents": [[0.0, pytest.approx(341 / 8192 * 4800, abs=1e-4)]]}
    assert "curves" not in notes[60] and set(notes[60]["sounding"]) == set(notes[60]["controls"])
    bad = subprocess.run([sys.executable, "-m", "engine", "render", str(path), "-o", str(tmp_path / "p.wav"),
                          "--bend-range", "200"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and bad.stderr.strip() == "error: --bend-range 200: use 0 to 96 semitones"
