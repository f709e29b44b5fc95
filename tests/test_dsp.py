import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine import dsp
from engine.params import FRAME_RATE, SynthParams
from engine.presets import synthetic_reverb


def steady(seconds, f0=440.0, amp=0.5, harmonics=None, noise=0.0, max_hz=8000.0):
    n = int(seconds * FRAME_RATE) + 2
    hd = torch.zeros(n, 60)
    if harmonics is None:
        hd[:, 0] = 1.0
    else:
        hd[:] = torch.tensor(harmonics)
    return SynthParams(torch.full((n,), f0), torch.full((n,), amp), hd, torch.full((n, 65), noise), max_hz)


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 96000])
def test_sine_matches_float64_reference_after_a_minute(sr):
    p = steady(61.0, f0=440.0)
    start = 60 * sr  # the last second of a minute: float32 phase would have drifted by now
    got = dsp.synthesize(p, sr, sr // 2, start=start).numpy()
    n = np.arange(start, start + sr // 2, dtype=np.float64)
    want = 0.5 * np.sin(2 * np.pi * 440.0 * n / sr)
    assert np.abs(got - want).max() < 2e-4


def test_any_range_equals_the_slice_of_the_whole():
    p = steady(3.0, f0=233.0, harmonics=[1 / k for k in range(1, 61)], noise=0.01)
    p.f0 = p.f0 * (1 + 0.02 * torch.sin(torch.arange(p.n_frames) / 7.0))
    whole = dsp.synthesize(p, 44100, 44100 * 3, seed=5).numpy()
    for start, length in [(0, 100), (12345, 20000), (44100 * 2 + 7, 30000)]:
        part = dsp.synthesize(p, 44100, length, seed=5, start=start).numpy()
        np.testing.assert_allclose(part, whole[start:start + length], atol=1e-6)


@pytest.mark.parametrize("sr", [22050, 48000])
def test_no_aliasing_partials_above_nyquist_dropped(sr):
    """A 1.5 kHz tone with 60 equal harmonics: every spectral peak must sit on a harmonic below the limit."""
    p = steady(1.0, f0=1500.0, harmonics=[1 / 60] * 60, max_hz=48000)
    x = dsp.synthesize(p, sr, sr).numpy() * np.hanning(sr)
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(sr, 1 / sr)
    strong = freqs[spectrum > spectrum.max() * 1e-3]
    assert np.all(np.abs(strong / 1500.0 - np.round(strong / 1500.0)) * 1500.0 < 5.0)
    assert strong.max() < sr / 2


def test_band_limit_of_the_model_holds_at_any_rate():
    p = steady(1.0, f0=1000.0, harmonics=[1 / 60] * 60, noise=0.01, max_hz=8000)
    x = dsp.synthesize(p, 48000, 48000).numpy()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(48000))) ** 2
    freqs = np.fft.rfftfreq(48000, 1 / 48000)
    assert spectrum[freqs > 8600].sum() < 1e-6 * spectrum.sum()


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_noise_level_convention(sr):
    p = steady(4.0, amp=0.0, noise=0.02, max_hz=sr / 2)
    x = dsp.synthesize(p, sr, sr * 4).numpy()[sr // 10: -sr // 10]
    assert x.std() == pytest.approx(0.02 / math.sqrt(3), rel=0.05)


def test_silent_params_give_silence_and_seed_changes_noise():
    assert not dsp.synthesize(steady(1.0, amp=0.0), 48000, 48000).any()
    p = steady(1.0, amp=0.0, noise=0.01)
    a, b = dsp.synthesize(p, 48000, 48000, seed=1), dsp.synthesize(p, 48000, 48000, seed=2)
    assert not torch.equal(a, b) and torch.equal(a, dsp.synthesize(p, 48000, 48000, seed=1))


def test_reverb_has_the_same_gain_at_any_rate():
    reverb = synthetic_reverb(rt60=0.8, seconds=1.0, wet=1.0)
    levels = []
    for sr in (16000, 48000):
        dry = dsp.synthesize(steady(2.0, f0=330.0), sr, 2 * sr).numpy()
        levels.append(reverb.get_signal(dry, sr)[sr // 2: 2 * sr].std())
    assert 20 * np.log10(levels[1] / levels[0]) == pytest.approx(0.0, abs=1.0)


@pytest.mark.parametrize("sr", [8000, 200000, 44100.0])
def test_unsupported_rates(sr):
    with pytest.raises(ValueError, match="not supported"):
        dsp.synthesize(steady(0.1), sr, 100)


def test_memory_stays_flat_for_long_clips():
    """Ten minutes at 48 kHz: peak memory beyond the output buffer stays small (blocks, not whole-signal tensors)."""
    code = """
import resource, torch, sys
sys.path.insert(0, '.')
from engine import dsp
from engine.params import SynthParams
def run(seconds):
    n = seconds * 250 + 2
    hd = torch.zeros(n, 60)
    hd[:, :8] = 1 / 8  # few partials: this test is about memory, not speed
    p = SynthParams(torch.full((n,), 110.0), torch.full((n,), 0.3), hd, torch.full((n, 65), 0.001), 8000.0)
    return dsp.synthesize(p, 48000, seconds * 48000)
run(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = run(600)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, out.numel() * 4)
"""
    grown, output = map(int, subprocess.check_output([sys.executable, "-c", code], cwd=".", text=True).split())
    # The 600 s signal is 115 MB; the parameters (600 s x 125 values) another 75 MB, made by the test itself.
    assert grown < 2 * output + 100e6, (grown, output)
