import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from daw_bridge.files import write_json_atomic
from engine.dsp import Reverb
from engine.notes import Clip, NoteError
from engine.render import (LIMIT_CEILING, expression_document, limit, limit_range, note_gate, read_expression,
                           render_clip, render_clips, write_audio)


def clip(notes):
    return Clip.from_data([dict(pitch=p, onset=a, offset=b, velocity=100, id=f"n{i}") for i, (p, a, b) in
                           enumerate(notes)])


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 96000])
@pytest.mark.parametrize("onset", [0.5, 0.123457, 1.0 / 3.0])
def test_note_sounds_from_sample_round_t_times_sr(parametric, sr, onset):
    result = render_clip(clip([(69, onset, onset + 0.4)]), parametric, sr, duration=1.5)
    first = round(onset * sr)
    assert not result.audio[:first].any() and result.audio[first:first + 10].any()
    assert abs(result.audio[first + int(0.01 * sr):first + int(0.05 * sr)]).max() > 0.05  # sounding fully at once


def test_gate_is_exact_and_joins_legato_notes():
    c = clip([(60, 0.1, 0.2), (62, 0.2, 0.3), (64, 0.5, 0.6)])
    gate = note_gate(c.voices()[0], 48000, 48000)
    assert gate[:4800].sum() == 0 and 0 < gate[4800] < gate[4801]
    assert gate[9590:9610].min() == 1.0  # no dip between legato notes
    assert gate[14400 - 1] > 0 and gate[14400:24000].sum() == 0


def test_same_input_same_bytes_and_seed_matters(parametric, tmp_path):
    c = clip([(60, 0.0, 0.5), (64, 0.5, 1.0), (67, 0.25, 1.2)])
    paths = []
    for i, seed in enumerate([3, 3, 4]):
        paths.append(write_audio(tmp_path / f"{i}.wav", render_clip(c, parametric, 48000, seed=seed).audio, 48000))
    data = [p.read_bytes() for p in paths]
    assert data[0] == data[1] and data[0] != data[2]


def test_stems_sum_to_the_mix_and_voices_split(parametric):
    c = clip([(60, 0.0, 1.0), (64, 0.0, 1.0), (67, 1.0, 1.5)])
    result = render_clip(c, parametric, 44100, stems=True)
    assert len(result.stems) == 2 == len(result.voices)
    np.testing.assert_allclose(sum(result.stems), result.audio, atol=1e-5)
    assert set(result.controls) == {"n0", "n1", "n2"}


def test_energy_at_the_expected_pitch(parametric):
    result = render_clip(clip([(57, 0.0, 2.0)]), parametric, 48000, duration=2.0)
    x = result.audio[4800:86400]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak_hz = np.argmax(spectrum) * 48000 / len(x)
    assert abs(12 * np.log2(peak_hz / 220.0)) < 0.3


def test_given_controls_are_used_and_change_the_sound(parametric):
    loud = Clip.from_data([dict(pitch=60, onset=0, offset=1, controls=[0.9, 0, 0, 0, 0.5, 0.5])])
    soft = Clip.from_data([dict(pitch=60, onset=0, offset=1, controls=[0.5, 0, 0, 0, 0.5, 0.5])])
    a = render_clip(loud, parametric, 16000).audio
    b = render_clip(soft, parametric, 16000).audio
    ratio_db = 20 * np.log10(a.std() / b.std())
    assert ratio_db == pytest.approx(24.0, abs=1.0)  # 0.4 of volume is 24 dB


def test_two_presets_mix(parametric):
    result = render_clips([(clip([(60, 0, 1)]), parametric), (clip([(48, 0, 1)]), parametric)], 16000, duration=1.0)
    assert result.audio.shape == (16000,) and len(result.voices) == 2


@pytest.mark.parametrize("ext, bits, subtype", [(".wav", "16", "PCM_16"), (".wav", "24", "PCM_24"),
                                                (".wav", "float", "FLOAT"), (".flac", "24", "PCM_24")])
def test_write_formats(tmp_path, ext, bits, subtype):
    audio = np.linspace(-1.5, 1.5, 1000).astype(np.float32)
    path = write_audio(tmp_path / f"x{ext}", audio, 44100, bits)
    info = sf.info(str(path))
    assert info.subtype == subtype and info.samplerate == 44100 and info.frames == 1000
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_write_errors_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match="wav or .flac"):
        write_audio(tmp_path / "x.mp3", np.zeros(10), 44100)
    with pytest.raises(ValueError, match="not available"):
        write_audio(tmp_path / "x.flac", np.zeros(10), 44100, "float")
    assert list(tmp_path.iterdir()) == []


def test_expression_json_round_trip(parametric, tmp_path):
    c = clip([(60, 0.0, 0.5), (62, 0.5, 1.0)])
    result = render_clip(c, parametric, 16000)
    path = tmp_path / "e.json"
    write_json_atomic(path, expression_document([c], result.controls))
    doc = json.loads(path.read_text())
    doc["notes"][1]["controls"]["vibrato"] = 0.9
    path.write_text(json.dumps(doc))
    (edited,) = read_expression(path, [c])
    assert edited.notes[1].controls[3] == 0.9 and edited.notes[0].controls == pytest.approx(result.controls["n0"])
    again = render_clip(edited, parametric, 16000)
    assert again.controls["n1"][3] == pytest.approx(0.9)


@pytest.mark.parametrize("content, message", [
    ("{", "cannot read"), ('{"notes": 3}', "must be a list"),
    ('{"notes": [{"id": "n0", "pitch": 61, "controls": {}}]}', "does not match"),
    ('{"notes": [{"id": "n0", "pitch": 60, "controls": {"volume": 1}}]}', "bad entry"),
])
def test_bad_expression_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(NoteError, match=message):
        read_expression(path, [clip([(60, 0, 1)])])


def test_bad_render_requests(parametric):
    with pytest.raises(ValueError, match="not supported"):
        render_clip(clip([(60, 0, 1)]), parametric, 11025)
    with pytest.raises(NoteError, match="out of range"):
        render_clip(clip([(60, 0, 1)]), parametric, 16000, duration=-1)
    with pytest.raises(NoteError, match="no clips"):
        render_clips([], 16000)


# ------------------------------------------------------------------------------------------------ chords
def chord_clip(controls=None):
    """A two-note chord (the second note 0.5 ms late: still together), a lone note, then a chord with one note given
    its controls (as when a note is added to a chord whose lane point exists)."""
    notes = [dict(id="hi", pitch=72, onset=0.0, offset=0.5, velocity=110),
             dict(id="lo", pitch=60, onset=0.0005, offset=0.5, velocity=40),
             dict(id="mid", pitch=64, onset=0.7, offset=1.0, velocity=80),
             dict(id="top", pitch=67, onset=1.2, offset=1.6, velocity=90),
             dict(id="bass", pitch=48, onset=1.2, offset=1.6, velocity=70, controls=[0.4, 0.1, 0.2, 0.3, 0.4, 0.5])]
    for note in notes:
        if controls and note["id"] in controls:
            note["controls"] = list(controls[note["id"]])
    return Clip.from_data(notes)


def test_notes_starting_together_get_the_same_generated_controls(parametric):
    c = chord_clip()
    predicted = {n.id: row for v in c.voices() for n, row in zip(v, parametric.expression.generate(v).clamp(0, 1))}
    assert not torch.equal(predicted["hi"], predicted["lo"])  # the generator tells the chord's notes apart
    result = render_clip(c, parametric, 16000)
    mean = tuple(((predicted["hi"].double() + predicted["lo"].double()) / 2).float().tolist())
    assert result.controls["hi"] == result.controls["lo"] == mean  # what a lane's one point can show
    assert result.controls["mid"] == tuple(predicted["mid"].tolist())  # alone: as predicted
    given = tuple(np.float32([0.4, 0.1, 0.2, 0.3, 0.4, 0.5]).tolist())
    assert result.controls["bass"] == given  # given: as given
    assert result.controls["top"] == given  # added to a chord whose other note has controls: it joins them


def test_a_lane_holding_one_value_per_chord_renders_the_same_audio(parametric):
    """A DAW lane keeps one point per start time: feeding the render's controls back that way changes nothing."""
    first = render_clip(chord_clip(), parametric, 16000, seed=2)
    lane = {}  # start (ms) -> the first note's controls, as a lane point holds them
    for note in sorted(chord_clip().notes, key=lambda n: n.onset):
        lane.setdefault(round(note.onset * 1000), first.controls[note.id])
    read_back = {n.id: lane[round(n.onset * 1000)] for n in chord_clip().notes}
    again = render_clip(chord_clip(read_back), parametric, 16000, seed=2)
    assert again.controls == first.controls and np.array_equal(again.audio, first.audio)


# ------------------------------------------------------------------------------------------------ sample precision
@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_each_note_sounds_exactly_from_its_first_to_its_last_sample(parametric, sr):
    """Without reverb the mix is the gated voice: the sample before round(onset * sr) is silent and that one
    sounds; the sample before round(offset * sr) sounds and that one is silent."""
    dry = replace(parametric, reverb=Reverb(parametric.reverb.impulse_response, parametric.reverb.ir_rate, wet=0.0))
    loud = [0.8, 0.1, 0.3, 0.0, 0.5, 1.0]  # attack noise: every first sample is noisy, never exactly 0
    spans = [(0.123457, 0.4), (0.5 + 1 / 3, 1.1 + 1 / 7), (1.5 + 1 / 11, 1.9)]
    c = Clip.from_data([dict(id=f"n{i}", pitch=60 + 3 * i, onset=a, offset=b, controls=loud)
                        for i, (a, b) in enumerate(spans)])
    audio = render_clip(c, dry, sr, duration=2.0).audio
    for a, b in spans:
        start, stop = round(a * sr), round(b * sr)
        assert audio[start - 1] == 0.0 and audio[start] != 0.0, (a, start)
        assert audio[stop - 1] != 0.0 and audio[stop] == 0.0, (b, stop)


# ------------------------------------------------------------------------------------------------ loudness
def loud_chord():
    full = [1.0, 0.2, 0.5, 0.3, 0.8, 0.6]
    return Clip.from_data([dict(id=f"n{i}", pitch=p, onset=0.0, offset=1.0, controls=full)
                           for i, p in enumerate([48, 55, 60, 64])] +
                          [dict(id="quiet", pitch=60, onset=2.0, offset=3.0, controls=[0.5] * 6)])


def test_a_mix_over_full_scale_is_limited_never_clipped_and_says_so(parametric, tmp_path):
    result = render_clip(loud_chord(), parametric, 48000, duration=4.0)
    assert result.unlimited is not None and np.abs(result.unlimited).max() > 1.5  # it would clip
    assert np.abs(result.audio).max() <= LIMIT_CEILING
    assert len(result.warnings) == 1 and "limiter" in result.warnings[0], result.warnings
    # local: a second after the loud chord nothing is touched
    quiet = slice(int(2.5 * 48000), int(3.0 * 48000))
    assert np.array_equal(result.audio[quiet], result.unlimited[quiet])
    # the 24-bit FLAC holds what was rendered: no sample at full scale
    path = write_audio(tmp_path / "loud.flac", result.audio, 48000, "24")
    written, _ = sf.read(path, dtype="float64")
    assert np.abs(written).max() < 1.0 and np.abs(written - result.audio).max() < 2 ** -22


def test_a_quiet_mix_is_left_alone(parametric):
    result = render_clip(clip([(60, 0.0, 1.0)]), parametric, 48000)
    assert result.unlimited is None and result.warnings == []


def test_limiter_is_the_same_on_any_range_of_samples():
    """What the incremental render relies on: limiting samples [a, b) from their neighbourhood gives exactly what
    limiting the whole signal gives."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(200_000) * np.repeat(rng.uniform(0.1, 1.2, 200), 1000)).astype(np.float32)
    whole = limit(x, 48000)
    assert np.abs(whole).max() <= LIMIT_CEILING and not np.array_equal(whole, x)
    for a, b in [(0, 5000), (31_337, 77_777), (150_000, 200_000)]:
        part = x.copy()
        limit_range(x, part, a, b, 48000)
        assert np.array_equal(part[a:b], whole[a:b]), (a, b)


def test_integer_files_clipping_is_reported(tmp_path, caplog):
    write_audio(tmp_path / "x.wav", np.float32([0.5, 1.5, -2.0]), 16000, "16")
    assert "2 samples" in caplog.text and "clipped" in caplog.text


def test_float_wav_has_no_peak_chunk_and_same_audio_same_bytes(tmp_path):
    audio = np.linspace(-0.5, 0.5, 1000).astype(np.float32)
    a = write_audio(tmp_path / "a.wav", audio, 48000, "float").read_bytes()
    b = write_audio(tmp_path / "b.wav", audio, 48000, "float").read_bytes()
    assert b"PEAK" not in a[:200] and a == b
    assert np.array_equal(sf.read(tmp_path / "a.wav", dtype="float32")[0], audio)
