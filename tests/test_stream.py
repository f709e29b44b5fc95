"""The streamed render (engine.stream) against the whole-array render (engine.render.render_clips + write_audio):
the same bytes across block boundaries, in stems, with the limiter working across a block boundary and in reverb
tails; its parts (reverb stream, gate window, limited view, sample file) against their whole-signal forms."""
from dataclasses import astuple

import numpy as np
import pytest
import torch
import soundfile as sf
from scipy.signal import oaconvolve

from engine.curves import sounding_controls
from engine.dsp import REVERB_BLOCK, Reverb
from engine.notes import Clip
from engine.presets import load_preset
from engine.render import Limited, limit, note_gate, render_clips, write_audio
from engine.stream import SampleFile, prepare, render_to_file

SR = 16000  # REVERB_BLOCK is 8.2 s here: a few blocks stay cheap


def clip(notes, controls=None):
    return Clip.from_data([dict(pitch=p, onset=a, offset=b, velocity=100, id=f"n{i}",
                                **({"controls": controls} if controls else {}))
                           for i, (p, a, b) in enumerate(notes)])


def across_blocks() -> Clip:
    """Two voices; notes that start before and end after each block boundary; a rest across one boundary."""
    block = REVERB_BLOCK / SR
    return clip([(60, 0.2, block - 0.3), (64, block - 0.3, block + 0.4), (67, block + 0.4, 2 * block - 0.05),
                 (72, 2 * block + 0.1, 2 * block + 1.0), (55, block - 1.0, block + 2.0)])


def loud_at_a_boundary() -> Clip:
    """A chord loud enough for the limiter, sounding over the first block boundary."""
    block = REVERB_BLOCK / SR
    full = [1.0, 0.2, 0.5, 0.3, 0.8, 0.6]
    return clip([(48, block - 0.4, block + 0.4), (55, block - 0.4, block + 0.4), (60, block - 0.4, block + 0.4),
                 (64, block - 0.4, block + 0.4)], controls=full)


def streamed_and_whole(parts, tmp_path, bits="float", stems=True):
    result = render_clips(parts, SR, seed=5, stems=stems)
    whole = write_audio(tmp_path / "whole.wav", result.audio, SR, bits)
    stem_paths = [tmp_path / f"stem{i}.wav" for i in range(len(result.voices))] if stems else None
    streamed = render_to_file(parts, tmp_path / "streamed.wav", SR, bits, seed=5, stem_paths=stem_paths)
    return result, whole, streamed, stem_paths


def test_streamed_equals_whole_across_block_boundaries_with_stems_and_reverb_tail(parametric, tmp_path):
    parts = [(across_blocks(), parametric)]
    result, whole, streamed, stem_paths = streamed_and_whole(parts, tmp_path)
    assert result.audio.shape[0] > 2 * REVERB_BLOCK and result.unlimited is None
    assert whole.read_bytes() == (tmp_path / "streamed.wav").read_bytes()
    for path, stem in zip(stem_paths, result.stems):
        assert np.array_equal(sf.read(path, dtype="float32")[0], stem)
    tail = slice(int((2 * REVERB_BLOCK / SR + 1.0) * SR) + 10, result.audio.shape[0])  # after the last offset
    assert np.abs(result.audio[tail]).max() > 1e-4  # the reverb tail sounds, and was streamed the same
    assert streamed.controls == result.controls and streamed.n_voices == 2 and streamed.warnings == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file or folder left


def test_streamed_limiter_across_a_block_boundary_equals_whole(parametric, tmp_path):
    parts = [(loud_at_a_boundary(), parametric)]
    result, whole, streamed, _ = streamed_and_whole(parts, tmp_path, bits="24", stems=False)
    changed = np.flatnonzero(result.audio != result.unlimited)
    assert changed.min() < REVERB_BLOCK < changed.max()  # the limiter works on both sides of the boundary
    assert whole.read_bytes() == (tmp_path / "streamed.wav").read_bytes()
    assert streamed.warnings == result.warnings and streamed.peak == pytest.approx(np.abs(result.audio).max())


def test_streamed_neural_presets_equal_whole(tmp_path):
    """Two trained presets (two reverbs summed in order), one voice each."""
    block = REVERB_BLOCK / SR
    parts = [(clip([(72, 0.1, block + 0.5)]), load_preset("flute")),
             (clip([(48, block - 0.5, block + 1.0)]), load_preset("bassoon"))]
    result, whole, streamed, stem_paths = streamed_and_whole(parts, tmp_path)
    assert whole.read_bytes() == (tmp_path / "streamed.wav").read_bytes()
    assert streamed.sounding == sounding_controls(result.voices)  # measured chunk by chunk as the render went


def test_reverb_stream_is_the_convolution_and_any_block_feed_is_the_same():
    rng = np.random.default_rng(1)
    reverb = Reverb(rng.standard_normal(3000).astype(np.float32) * 0.01, SR, wet=0.3, gain=0.7)
    dry = np.zeros(2 * REVERB_BLOCK + 5000, dtype=np.float32)
    dry[1000:REVERB_BLOCK + 300] = rng.standard_normal(REVERB_BLOCK - 700)
    dry[2 * REVERB_BLOCK + 100:] = rng.standard_normal(4900)
    out = reverb.get_signal(dry, SR)
    expected = (oaconvolve(dry.astype(np.float64), reverb.ir_at(SR).astype(np.float64)) * 0.3)
    expected[:dry.shape[0]] += dry * 0.7
    expected *= 0.7
    assert out.shape == expected.shape and np.abs(out - expected).max() < 1e-5
    assert not out[:1000].any()  # nothing before the first sound, not even FFT round-off
    stream = reverb.stream(SR)
    pieces = [stream.push(dry[lo:lo + REVERB_BLOCK]) for lo in range(0, dry.shape[0], REVERB_BLOCK)]
    assert np.array_equal(np.concatenate(pieces + [stream.tail()]), out)
    with pytest.raises(ValueError):
        stream.push(dry[:10])  # the stream ended with a short block


def test_gate_window_equals_the_whole_gate():
    voice = clip([(60, 0.1, 0.2), (62, 0.2, 0.3), (64, 0.5, 0.6), (65, 0.9, 1.3)]).voices()[0]
    whole = note_gate(voice, 18000, 16000)
    for start, stop in [(0, 18000), (1599, 1700), (3190, 3210), (4750, 9700), (9599, 9601), (17000, 18000)]:
        assert np.array_equal(note_gate(voice, 18000, 16000, (start, stop)), whole[start:stop]), (start, stop)


def test_limited_view_and_sample_file_read_like_the_arrays(tmp_path):
    rng = np.random.default_rng(2)
    audio = (rng.standard_normal(300_000) * 0.4).astype(np.float32)
    audio[150_000:150_050] *= 8.0  # peaks over the ceiling
    samples = SampleFile(tmp_path, audio.shape[0])
    assert list(tmp_path.iterdir()) == []  # nameless: nothing to clean up, even after a kill
    assert not samples[0:1000].any()  # a new file reads as zeros
    samples[0:audio.shape[0]] = audio
    assert np.array_equal(samples[1234:200_000], audio[1234:200_000])
    limited = limit(audio, 48000)
    view = Limited(samples, 48000)
    for start, stop in [(0, 300_000), (149_000, 151_000), (150_010, 150_011), (299_990, 300_000)]:
        assert np.array_equal(view[start:stop], limited[start:stop]), (start, stop)
    copy = samples.copy()
    copy[0:10] = np.ones(10, dtype=np.float32)
    assert samples[0:10].tolist() == audio[:10].tolist() and copy[0:10].tolist() == [1.0] * 10
    samples.close(), copy.close()


def test_a_bad_output_name_leaves_nothing(parametric, tmp_path):
    with pytest.raises(ValueError, match="wav or .flac"):
        render_to_file([(clip([(60, 0.0, 0.5)]), parametric)], tmp_path / "out.mp3", SR)
    assert list(tmp_path.iterdir()) == []


def test_prepare_checks_like_render_clips(parametric):
    with pytest.raises(Exception, match="no clips"):
        prepare([], SR)
    with pytest.raises(ValueError, match="sample rate"):
        prepare([(clip([(60, 0.0, 0.5)]), parametric)], 8000)


def test_render_cache_on_disk_equals_in_memory_full_and_incremental(parametric, tmp_path):
    """The service's cache keeps mixes in nameless files (RenderCache(folder=...)): same audio as in memory, for a
    limited full render and an incremental edit of it."""
    from engine.incremental import RenderCache
    from test_incremental import edit, loud_phrase

    memory, disk = RenderCache(), RenderCache(folder=tmp_path / "cache")
    clip = loud_phrase()
    first = [cache.render("c", clip, parametric, 48000) for cache in (memory, disk)]
    assert isinstance(first[1].audio, SampleFile) and first[0].warnings == first[1].warnings != []
    n = first[0].audio.shape[0]
    assert np.array_equal(first[1].audio[0:n], first[0].audio)
    edited = edit(clip, dict(first[0].controls), {"c3-1": {0: 0.9}, "s4": {0: 0.2}})
    again = [cache.render("c", edited, parametric, 48000) for cache in (memory, disk)]
    assert again[1].mode == "incremental" and again[1].changed == again[0].changed
    assert np.array_equal(again[1].audio[0:n], again[0].audio)
    in_memory, on_disk = memory.entries["c"], disk.entries["c"]
    params = sum(v.params.nbytes for v in in_memory.voices)
    assert on_disk.nbytes == 0 and on_disk.disk_bytes == 2 * 4 * n + params == in_memory.nbytes  # all on disk
    for kept, held in zip(on_disk.voices, in_memory.voices):  # the parameters on disk are those in memory
        assert all(torch.equal(a, b) for a, b in zip(astuple(kept.params.read(0, held.params.n_frames))[:4],
                                                     astuple(held.params.params)[:4]))
    assert list((tmp_path / "cache").iterdir()) == []  # nothing named on disk
