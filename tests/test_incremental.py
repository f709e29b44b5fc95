"""Incremental re-render (engine.incremental) equals a full render of the same request."""
from dataclasses import replace

import numpy as np
import pytest

from engine import dsp
from engine.incremental import RenderCache
from engine.notes import Clip, Note
from engine.params import SynthParams
from engine.render import LIMIT_CEILING, render_clip

SR = 48000
TOLERANCE = 1e-5  # max abs sample difference to a full render (docs/protocol.md)


def phrase_clip(seconds: float = 16.0, seed: int = 0) -> Clip:
    """Two voices: a melody with legato runs and rests, a bass under every third note."""
    rng = np.random.default_rng(seed)
    notes, t, i = [], 0.0, 0
    while t < seconds:
        length = float(rng.choice([0.25, 0.5, 0.75]))
        notes.append(Note(int(rng.integers(62, 80)), t, t + length, int(rng.integers(50, 120)), f"m{i}"))
        if i % 3 == 0:
            notes.append(Note(int(rng.integers(40, 55)), t, t + 2 * length, 80, f"b{i}"))
        t += length + float(rng.choice([0.0, 0.0, 0.1, 0.3]))
        i += 1
    return Clip(notes).checked()


def edit(clip: Clip, controls: dict, changes: dict) -> Clip:
    """Clip with every note's controls given, `changes` {id: {index: value}} applied."""
    for note_id, values in changes.items():
        row = list(controls[note_id])
        for index, value in values.items():
            row[index] = value
        controls[note_id] = tuple(row)
    return Clip([replace(n, controls=controls[n.id]) for n in clip.notes]).checked()


def assert_matches_full(rendered, clip, preset, **kwargs):
    full = render_clip(clip, preset, SR, **kwargs).audio
    assert rendered.audio.shape == full.shape
    difference = np.abs(rendered.audio - full).max()
    assert difference < TOLERANCE, difference


def test_phase_restarts_after_a_rest():
    """A note after a rest sounds the same whatever the f0 before the rest was (what makes edits local)."""
    def voice(first_hz):
        params = SynthParams.silence(500)
        params.f0[:] = 440.0
        params.f0[:100] = first_hz
        params.amplitude[:100] = 0.5
        params.amplitude[150:300] = 0.5
        params.harmonics[:, 0] = 1.0
        return dsp.synthesize(params, SR, int(1.3 * SR), seed=1).numpy()

    a, b = voice(300.0), voice(311.0)
    start = int(0.56 * SR)  # inside the rest (frames 100-150) and after it
    np.testing.assert_array_equal(a[start:], b[start:])
    assert np.abs(a[:start] - b[:start]).max() > 0.1


@pytest.mark.parametrize("changes", [
    {"m5": {0: 0.3}},  # volume
    {"m7": {3: 0.9}},  # vibrato: f0 changes, the phase moves up to the next rest
    {"m9": {4: 0.9}, "b9": {5: 0.1}},  # brightness and attack noise, two voices
    {"m0": {1: 0.5}},  # the first note
])
def test_one_edit_equals_a_full_render(parametric, changes):
    clip = phrase_clip()
    cache = RenderCache()
    first = cache.render("clip", clip, parametric, SR)
    assert first.mode == "full" and len(first.rerendered) == len(clip.notes)
    edited = edit(clip, dict(first.controls), changes)
    again = cache.render("clip", edited, parametric, SR)
    assert again.mode == "incremental"
    assert set(changes) <= set(again.rerendered) and len(again.rerendered) < len(clip.notes) / 3
    assert_matches_full(again, edited, parametric)
    for note_id, values in changes.items():
        for index, value in values.items():
            assert again.controls[note_id][index] == pytest.approx(value)


def test_edits_accumulate_and_the_last_note_and_length_work(parametric):
    clip = phrase_clip(10.0, seed=3)
    cache = RenderCache()
    controls = dict(cache.render("c", clip, parametric, SR, seed=7, length=12.0).controls)
    last = clip.notes[-1].id
    for step, changes in enumerate([{last: {0: 0.2}}, {"m3": {3: 1.0}}, {"m3": {3: 0.0}}, {"m4": {2: 0.9}}]):
        edited = edit(clip, controls, changes)
        rendered = cache.render("c", edited, parametric, SR, seed=7, length=12.0)
        assert rendered.mode == "incremental", step
    assert_matches_full(rendered, edited, parametric, seed=7, duration=12.0)


def test_unchanged_request_reuses_the_mix_and_timing_changes_render_in_full(parametric):
    clip = phrase_clip(6.0)
    cache = RenderCache()
    first = cache.render("c", clip, parametric, SR)
    audio = first.audio.copy()
    same = cache.render("c", Clip([replace(n, controls=first.controls[n.id]) for n in clip.notes]).checked(),
                        parametric, SR)
    assert same.mode == "incremental" and same.rerendered == []
    np.testing.assert_array_equal(same.audio, audio)
    moved = Clip([replace(n, offset=n.offset + 0.01) if n.id == "m2" else n for n in clip.notes]).checked()
    assert cache.render("c", moved, parametric, SR).mode == "full"
    assert cache.render("c", moved, parametric, 44100).mode == "full"


class WholeVoiceGenerator:
    """A real generator whose frames depend on every note of the voice (loudness follows the voice's mean volume
    control, as a recurrent network's might): windows cannot reproduce it, so the whole voice is regenerated."""

    def __init__(self, inner):
        self.inner, self.max_hz = inner, inner.max_hz

    def generate(self, notes, controls, n_frames):
        params = self.inner.generate(notes, controls, n_frames)
        params.amplitude = params.amplitude * (0.5 + controls[:, 0].mean())
        return params


def test_generators_that_look_at_the_whole_voice_still_match(parametric):
    preset = replace(parametric, synthesis=WholeVoiceGenerator(parametric.synthesis), path=None, name="whole")
    clip = phrase_clip(6.0)
    cache = RenderCache()
    first = cache.render("c", clip, preset, SR)
    edited = edit(clip, dict(first.controls), {"m4": {0: 0.2}})
    rendered = cache.render("c", edited, preset, SR)
    assert rendered.mode == "incremental"
    assert len(rendered.rerendered) > len([n for n in clip.notes if n.id.startswith("m")]) / 2  # the whole voice
    assert_matches_full(rendered, edited, preset)


def test_cache_is_bounded_in_bytes(parametric):
    clip = Clip([Note(60, 0.0, 1.0, id="a")]).checked()
    cache = RenderCache(max_bytes=1)
    for name in ("x", "y", "z"):
        cache.render(name, clip, parametric, 16000)
    assert list(cache.entries) == ["z"]


def chord_phrase() -> Clip:
    """Chords (some notes a fraction of a millisecond apart) between single notes, with rests around the chords."""
    notes, t = [], 0.0
    for i in range(8):
        if i % 2:
            for k, pitch in enumerate((60, 64, 67)):
                notes.append(Note(pitch + i, t + 0.0004 * k, t + 0.5, 90 - 10 * k, f"c{i}-{k}"))
        else:
            notes.append(Note(72 + i, t, t + 0.4, 100, f"s{i}"))
        t += 0.7
    return Clip(notes).checked()


def test_a_chord_read_back_from_a_lane_changes_nothing_and_its_edit_only_the_chord(parametric):
    """A lane holds one value per start: the controls read back that way re-render bit-identically; a new value
    at a chord's point re-renders that chord's notes only."""
    clip = chord_phrase()
    cache = RenderCache()
    first = cache.render("c", clip, parametric, SR)
    audio = first.audio.copy()
    lane = {}  # onset (ms) -> the controls of the first note starting there
    for note in clip.notes:
        lane.setdefault(round(note.onset * 1000), first.controls[note.id])
    read_back = {n.id: lane[round(n.onset * 1000)] for n in clip.notes}
    same = cache.render("c", Clip([replace(n, controls=read_back[n.id]) for n in clip.notes]).checked(), parametric, SR)
    assert same.mode == "incremental" and same.rerendered == []
    np.testing.assert_array_equal(same.audio, audio)
    chord = [n.id for n in clip.notes if n.id.startswith("c3-")]
    edited = edit(clip, dict(read_back), {note_id: {0: 0.3} for note_id in chord})
    again = cache.render("c", edited, parametric, SR)
    assert again.mode == "incremental" and sorted(again.rerendered) == sorted(chord)
    assert_matches_full(again, edited, parametric)


def loud_phrase() -> Clip:
    """A phrase whose chords would clip (volume near 1, three voices)."""
    clip = chord_phrase()
    return Clip([replace(n, controls=(0.98 if n.id.startswith("c") else 0.6, 0.2, 0.5, 0.3, 0.7, 0.5))
                 for n in clip.notes]).checked()


@pytest.mark.parametrize("changes", [
    {"c3-1": {0: 0.9}},  # inside a limited chord
    {"s4": {0: 0.2}},  # a quiet note between two limited chords
    {"c5-0": {0: 0.3}, "c5-1": {0: 0.3}, "c5-2": {0: 0.3}},  # a chord no longer needs the limiter
])
def test_edits_of_a_limited_mix_equal_a_full_render(parametric, changes):
    clip = loud_phrase()
    cache = RenderCache()
    first = cache.render("c", clip, parametric, SR)
    assert first.warnings and np.abs(first.audio).max() <= LIMIT_CEILING
    edited = edit(clip, dict(first.controls), changes)
    again = cache.render("c", edited, parametric, SR)
    assert again.mode == "incremental" and again.warnings
    assert np.abs(again.audio).max() <= LIMIT_CEILING
    assert_matches_full(again, edited, parametric)


def test_an_edit_that_first_needs_the_limiter_equals_a_full_render(parametric):
    clip = Clip([replace(n, controls=(0.5, 0.2, 0.5, 0.3, 0.7, 0.5)) for n in chord_phrase().notes]).checked()
    cache = RenderCache()
    first = cache.render("c", clip, parametric, SR)
    assert not first.warnings
    edited = edit(clip, dict(first.controls), {f"c5-{k}": {0: 1.0} for k in range(3)})
    again = cache.render("c", edited, parametric, SR)
    assert again.mode == "incremental" and again.warnings and again.changed[1] > again.changed[0]
    assert np.abs(again.audio).max() <= LIMIT_CEILING
    assert_matches_full(again, edited, parametric)
