import math

import pytest
import torch

from engine.expression import extract_controls, vibrato
from engine.notes import Note
from engine.params import FRAME_RATE, SynthParams
from engine.synthesis import ParametricInstrument, midi_to_hz

N = 500  # 2 s of frames


def params(amp_db=-20.0, f0=None, harmonics=None, noise_db=-55.0):
    f0 = torch.full((N,), 440.0) if f0 is None else f0
    if harmonics is None:
        harmonics = torch.zeros(N, 60)
        harmonics[:, 0] = 1.0
    amp = torch.full((N,), 10 ** (amp_db / 20)) if not torch.is_tensor(amp_db) else 10 ** (amp_db / 20)
    return SynthParams(f0, amp, harmonics, torch.full((N, 65), 10 ** (noise_db / 20)), 8000.0)


NOTE = [Note(69, 0.0, N / FRAME_RATE)]


def test_steady_note_known_values():
    c = extract_controls(params(), NOTE)[0].tolist()
    assert c[0] == pytest.approx(-20 / 60 + 1, abs=1e-5)  # volume
    assert c[1] == pytest.approx(0.0, abs=1e-6)  # no fluctuation
    assert c[2] == 0.0  # argmax of a constant is the first frame
    assert c[3] == 0.0  # no vibrato
    assert c[4] == pytest.approx(5 / 60, abs=1e-6)  # pure fundamental
    assert c[5] == pytest.approx(-55 / 40 + 1.875, abs=1e-5)


def test_fluctuation_and_peak_position():
    curve = torch.full((N,), -30.0)
    curve[: N // 2] = -6.0
    c = extract_controls(params(torch.cat([curve[N // 2:], curve[: N // 2]])), NOTE)[0].tolist()
    assert c[1] == pytest.approx(12.0 * 2.5 / 60, abs=1e-4)  # std of a two-level curve 24 dB apart = 12 dB
    assert c[2] == pytest.approx(0.5)
    ramp = torch.linspace(-40, -10, N)
    assert extract_controls(params(ramp), NOTE)[0, 2].item() == pytest.approx((N - 1) / N)


@pytest.mark.parametrize("rate", [4.5, 6.0, 7.0])
def test_vibrato_of_known_depth(rate):
    extent = 0.2  # semitones
    t = torch.arange(N, dtype=torch.float64) / FRAME_RATE
    f0 = (440.0 * 2 ** (extent * torch.sin(2 * math.pi * rate * t) / 12)).float()
    value = vibrato(f0, 69)
    # Tukey(0.5) has coherent gain 0.75: |rfft|/n of A sin is 0.375 A at the bin; x10.
    assert value == pytest.approx(10 * 0.375 * extent, rel=0.03)


def test_no_vibrato_outside_band_or_short_notes():
    t = torch.arange(N, dtype=torch.float64) / FRAME_RATE
    slow = (440.0 * 2 ** (0.3 * torch.sin(2 * math.pi * 1.0 * t) / 12)).float()
    assert vibrato(slow, 69) < 0.1
    assert vibrato(torch.full((50,), 450.0), 69) == 0.0


def test_brightness_of_flat_spectrum_clips_to_one():
    flat = torch.full((N, 60), 1 / 60)
    assert extract_controls(params(harmonics=flat), NOTE)[0, 4].item() == 1.0
    assert extract_controls(params(harmonics=flat), NOTE, clip=False)[0, 4].item() == pytest.approx(5 * 30.5 / 60)


def test_silence_and_clipping_to_unit_range():
    c = extract_controls(params(amp_db=-200.0, noise_db=-200.0), NOTE)
    assert c.min() >= 0 and c.max() <= 1 and c[0, 0] == 0.0 and c[0, 5] == 0.0


def test_parametric_instrument_honours_each_control():
    """The baseline inverts the definitions: extracting what it generated gives back the controls."""
    notes = [Note(60 + i, i * 1.2, i * 1.2 + 1.0) for i in range(6)]
    controls = torch.tensor([[0.3, 0.1, 0.2, 0.0, 0.25, 0.3], [0.7, 0.4, 0.8, 0.5, 0.5, 0.6],
                             [0.9, 0.0, 0.0, 0.9, 0.9, 0.9], [0.5, 0.6, 0.5, 0.3, 0.15, 0.1],
                             [0.1, 0.2, 0.9, 0.7, 0.7, 0.5], [0.6, 0.3, 0.4, 0.2, 0.4, 0.4]])
    generated = ParametricInstrument(max_hz=8000).generate(notes, controls, int(8 * FRAME_RATE))
    extracted = extract_controls(generated, notes)
    err = (extracted - controls).abs()
    assert err[:, [0, 1, 4, 5]].max() < 0.03, err
    assert err[controls[:, 1] > 0, 2].max() < 0.05  # peak position is defined when the volume moves
    assert err[:, 3].max() < 0.06  # vibrato scallops a little off-bin


def test_midi_to_hz():
    assert midi_to_hz(69.0) == 440.0


def test_brightness_reads_the_centroid_whatever_the_harmonic_count():
    """Full-band presets have 100 harmonics, older ones 60: the same sound must read the same brightness."""
    from engine.expression import brightness

    profile = torch.tensor([0.6, 0.25, 0.1, 0.05])  # centroid 1.6
    for count in (60, 100):
        harmonics = torch.zeros(10, count)
        harmonics[:, :4] = profile
        assert brightness(harmonics) == pytest.approx(1.6 / 12)
