"""A voice's parameters chunk by chunk (engine.frames) against the whole voice: the chunked network and projection
against the network run once over the whole voice (the same up to float rounding), any window against the joined
chunks (the same floats), the DSP from a rolling window against the whole parameters (the same samples), and an
incremental edit of a neural voice kept on disk against a full render."""
from dataclasses import astuple, replace

import numpy as np
import pytest
import torch

from engine import dsp, frames, model
from engine.frames import RollingFrames, VoiceFrames
from engine.model import bridge_legato, decode, project_controls, raw_to_params, reachable_inputs, synthesis_features
from engine.notes import Clip, Note
from engine.params import frames_for
from engine.presets import load_preset
from engine.render import render_clip, resolve_controls

SR = 16000


@pytest.fixture(scope="module")
def flute():
    return load_preset("flute")


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of ~1.2 s and network blocks of ~1 s: a short voice crosses many of both."""
    monkeypatch.setattr(frames, "CHUNK_FRAMES", 300)
    monkeypatch.setattr(model, "NET_BLOCK_FRAMES", 256)


def phrase(seconds: float = 14.0, seed: int = 3) -> list[Note]:
    """One voice: legato runs (bridged joins), rests, a 3 s note across chunk and block boundaries, a bent note."""
    rng = np.random.default_rng(seed)
    notes, t, i = [], 0.05, 0
    while t < seconds:
        length = 3.0 if i == 5 else float(rng.choice([0.2, 0.45, 0.8]))
        notes.append(Note(int(rng.integers(64, 84)), t, t + length, int(rng.integers(50, 120)), f"n{i}"))
        t += length + float(rng.choice([0.0, 0.0, 0.0, 0.15, 0.6]))
        i += 1
    notes[8] = replace(notes[8], curves=(("cents", ((0.0, 0.0), (0.2, 80.0))), ("gain_db", ((0.0, -6.0),))))
    return Clip(notes).checked().notes


def whole_network(generator, notes, controls, n_frames):
    """The synthesis generator as it was before chunks: the network once over the whole voice."""
    features = synthesis_features(notes, reachable_inputs(notes, controls, generator.max_hz), n_frames)
    with torch.no_grad():
        out = decode(generator.net(features[None])[0], generator.net.n_harmonics)
    params = bridge_legato(raw_to_params(out, notes, n_frames, generator.max_hz), notes)
    return project_controls(params, notes, controls, generator.vibrato_rate_hz)


def test_chunked_generation_equals_the_whole_voice(flute, small_chunks):
    notes = [replace(n, curves=()) for n in phrase()]
    controls = resolve_controls(notes, flute)
    n_frames = frames_for(notes[-1].offset + 1.0)
    voice = VoiceFrames(notes, flute, controls, n_frames)
    assert len(voice.bounds) > 10
    for lo, hi in zip(voice.bounds, voice.bounds[1:]):  # no note's measured frames are cut by a chunk boundary
        assert not any(a < lo < b or a < hi < b for a, b in voice.voice.measured)
    chunked = voice.whole()
    reference = whole_network(flute.synthesis, notes, controls, n_frames)
    on = reference.amplitude > 1e-4  # audible frames: compare relative to the level there
    assert torch.equal(chunked.amplitude == 0, reference.amplitude == 0)
    assert float(((chunked.f0 - reference.f0) / reference.f0).abs().max()) < 1e-5
    assert float(((chunked.amplitude - reference.amplitude)[on] / reference.amplitude[on]).abs().max()) < 1e-3
    assert float((chunked.harmonics - reference.harmonics).abs().max()) < 1e-4
    assert float(((chunked.noise - reference.noise)[on] / reference.noise[on]).abs().max()) < 1e-3


def test_any_window_is_the_joined_chunks_to_the_bit(flute, small_chunks):
    notes = phrase()
    controls = resolve_controls(notes, flute)
    voice = VoiceFrames(notes, flute, controls, frames_for(notes[-1].offset + 1.0))
    whole = voice.whole()
    for lo, hi in [(0, 50), (290, 910), (1234, 2345), (voice.n_frames - 40, voice.n_frames)]:
        window = VoiceFrames(notes, flute, controls, voice.n_frames).frames(lo, hi)
        assert all(torch.equal(a, b) for a, b in zip(astuple(window)[:4], astuple(whole.frames(lo, hi))[:4]))
    parametric = load_preset("parametric")
    pvoice = VoiceFrames(notes, parametric, resolve_controls(notes, parametric), voice.n_frames)
    pwhole = parametric.synthesis.generate(notes, pvoice.controls, voice.n_frames)
    from engine.curves import apply_curves
    pwhole = apply_curves(pwhole, notes)
    assert all(torch.equal(a, b) for a, b in zip(astuple(pvoice.frames(700, 1900))[:4],
                                                 astuple(pwhole.frames(700, 1900))[:4]))


def test_rolling_windows_render_the_whole_voice_sample_for_sample(flute, small_chunks):
    """The phase carried across dropped frames, the windows the noise and harmonic blocks need: the same samples."""
    notes = phrase(10.0)
    controls = resolve_controls(notes, flute)
    n_samples = int((notes[-1].offset + 0.5) * SR)
    voice = VoiceFrames(notes, flute, controls, frames_for(n_samples / SR))
    whole = dsp.synthesize(voice.whole(), SR, n_samples, seed=4).numpy()
    rolling = RollingFrames(VoiceFrames(notes, flute, controls, voice.n_frames), SR)
    pieces = []
    for lo in range(0, n_samples, 6000):
        hi = min(lo + 6000, n_samples)
        window = rolling.window(lo, hi)
        assert window.n_frames < voice.n_frames / 2  # a few chunks (the 3 s note is one), not the voice
        pieces.append(dsp.synthesize(window, SR, hi - lo, seed=4, start=lo).numpy())
    assert np.array_equal(np.concatenate(pieces), whole)
    with pytest.raises(ValueError, match="cannot render"):
        dsp.synthesize(voice.whole().frames(500, 900).window(500, voice.n_frames, 0), SR, 1000, start=0)


def test_neural_edit_on_disk_equals_a_full_render_and_stays_local(flute, small_chunks, tmp_path):
    from engine.incremental import RenderCache

    clip = Clip([replace(n, curves=()) for n in phrase(16.0)]).checked()
    cache = RenderCache(folder=tmp_path)
    first = cache.render("c", clip, flute, SR)
    controls = dict(first.controls)
    controls["n12"] = (0.9, 0.3, 0.2, 0.6, 0.5, 0.1)
    edited = Clip([replace(n, controls=controls[n.id]) for n in clip.notes]).checked()
    rendered = cache.render("c", edited, flute, SR)
    assert rendered.mode == "incremental" and "n12" in rendered.rerendered
    assert len(rendered.rerendered) < len(clip.notes) / 2
    full = render_clip(edited, flute, SR).audio
    assert np.abs(rendered.audio[0:full.shape[0]] - full).max() < 1e-5
    voice = cache.entries["c"].voices[0]
    again = VoiceFrames(edited.notes, flute, voice.controls, voice.params.n_frames).whole()
    assert all(torch.equal(a, b) for a, b in zip(astuple(voice.params.read(0, voice.params.n_frames))[:4],
                                                 astuple(again)[:4]))  # the parameters on disk are the edit's
