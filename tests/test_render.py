import json

import numpy as np
import pytest
import soundfile as sf

from daw_bridge.files import write_json_atomic
from engine.notes import Clip, NoteError
from engine.render import expression_document, note_gate, read_expression, render_clip, render_clips, write_audio


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
