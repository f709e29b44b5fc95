import pytest

from conftest import write_midi
from engine.notes import MAX_NOTES, Clip, Note, NoteError, clips_from_midi


def data(*notes):
    return [dict(pitch=p, onset=a, offset=b, id=str(i)) for i, (p, a, b) in enumerate(notes)]


def test_from_data_sorts_and_keeps_ids():
    clip = Clip.from_data(data((64, 1.0, 2.0), (60, 0.0, 1.0)))
    assert [n.id for n in clip.notes] == ["1", "0"]
    assert clip.end == 2.0


def test_controls_given_as_mapping_or_list():
    names = ["volume", "volume_fluctuation", "volume_peak_position", "vibrato", "brightness", "attack_noise"]
    clip = Clip.from_data([dict(pitch=60, onset=0, offset=1, controls=dict(zip(names, [0.1] * 6))),
                           dict(pitch=62, onset=1, offset=2, id="b", controls=[0.2] * 6)])
    assert clip.notes[0].controls == (0.1,) * 6 and clip.notes[1].controls == (0.2,) * 6


@pytest.mark.parametrize("bad, message", [
    ([], "no notes"),
    ([dict(pitch=130, onset=0, offset=1)], "outside MIDI"),
    ([dict(pitch=60, onset=-1, offset=1)], "before the clip start"),
    ([dict(pitch=60, onset=float("nan"), offset=1)], "finite"),
    ([dict(pitch=60, onset=0)], "missing field"),
    ([dict(pitch="x", onset=0, offset=1)], "note 0"),
    ([dict(pitch=60, onset=0, offset=1, controls=[2.0] * 6)], "[0, 1]"),
    ([dict(pitch=60, onset=0, offset=1, controls=[0.5] * 5)], "expected 6"),
    ([dict(pitch=60, onset=0, offset=1, id="a"), dict(pitch=62, onset=1, offset=2, id="a")], "used twice"),
    ([dict(pitch=60, onset=0, offset=4000)], "at most"),
    (["nope"], "expected a mapping"),
])
def test_bad_notes_are_clear_errors(bad, message):
    with pytest.raises(NoteError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Clip.from_data(bad)


def test_too_many_notes():
    notes = [dict(pitch=60, onset=i * 0.01, offset=i * 0.01 + 0.005) for i in range(MAX_NOTES + 1)]
    with pytest.raises(NoteError, match="at most"):
        Clip.from_data(notes)


def test_zero_length_is_error_strict_and_dropped_with_repair():
    notes = data((60, 0.0, 1.0), (62, 1.0, 1.0))
    with pytest.raises(NoteError, match="zero or negative"):
        Clip.from_data(notes)
    clip = Clip.from_data(notes, repair=True)
    assert [n.id for n in clip.notes] == ["0"] and "zero or negative" in clip.repairs[0]


def test_same_pitch_overlap_is_cut_and_duplicates_dropped():
    notes = data((60, 0.0, 2.0), (60, 1.0, 3.0), (64, 0.0, 1.0), (64, 0.0, 0.5))
    with pytest.raises(NoteError, match="overlap on the same pitch"):
        Clip.from_data(notes)
    clip = Clip.from_data(notes, repair=True)
    by_id = {n.id: n for n in clip.notes}
    assert by_id["0"].offset == 1.0 and by_id["1"].offset == 3.0
    assert "2" in by_id and "3" not in by_id  # the longer duplicate stays
    assert len(clip.repairs) == 2


def test_voices_split_chords_deterministically_top_line_first():
    clip = Clip.from_data(data((60, 0, 1), (64, 0, 1), (67, 0, 1), (62, 1, 2), (65, 1, 3), (69, 2, 3)))
    voices = clip.voices()
    assert [[n.pitch for n in v] for v in voices] == [[67, 65], [64, 62, 69], [60]]
    assert clip.voices() == voices
    for voice in voices:
        assert all(a.offset <= b.onset for a, b in zip(voice, voice[1:]))


def test_midi_file_with_tempo_change(tmp_path):
    path = write_midi(tmp_path / "t.mid", [(73, [(60, 0, 1, 90), (62, 2, 3, 100), (64, 4, 6, 110)])],
                      tempi=[(0, 120), (2, 60)])
    (clip,) = clips_from_midi(path)
    assert clip.program == 73
    times = [(round(n.onset, 6), round(n.offset, 6)) for n in clip.notes]
    assert times == [(0.0, 0.5), (1.0, 2.0), (3.0, 5.0)]
    assert [n.id for n in clip.notes] == ["t0n0", "t0n1", "t0n2"]
    assert [n.velocity for n in clip.notes] == [90, 100, 110]


def test_midi_errors(tmp_path):
    with pytest.raises(NoteError, match="no such MIDI file"):
        clips_from_midi(tmp_path / "missing.mid")
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"not a midi file at all")
    with pytest.raises(NoteError, match="cannot read MIDI"):
        clips_from_midi(junk)
    empty = write_midi(tmp_path / "empty.mid", [(0, [])])
    with pytest.raises(NoteError, match="no pitched notes"):
        clips_from_midi(empty)


def test_note_duration():
    assert Note(60, 1.0, 1.5).duration == 0.5
