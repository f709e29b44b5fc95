"""engine/training/measures.py on synthetic signals with known answers."""
import numpy as np
import pytest
from scipy import signal

from engine.training import measures as m

SR = 48000


def sine(seconds, freq=1000.0, amplitude=0.5, sr=SR):
    t = np.arange(int(round(seconds * sr))) / sr
    return amplitude * np.sin(2 * np.pi * freq * t)


def db_envelope(points, seconds, sr=SR):
    """Amplitude envelope piecewise linear in dB through (time, dB) points."""
    t = np.arange(int(round(seconds * sr))) / sr
    times, dbs = zip(*points)
    return 10.0 ** (np.interp(t, times, dbs) / 20.0)


def test_level_curve_reads_rms_in_dbfs_and_floors_silence():
    x = np.concatenate([np.zeros(SR // 2), sine(1.0, amplitude=1.0)])
    levels = m.level_curve(x, SR)
    assert levels.shape == (x.shape[0] // 480 + 1,)
    assert levels[10] == m.FLOOR_DB  # 0.1 s: silence
    assert levels[100] == pytest.approx(-3.0103, abs=0.01)  # full-scale sine
    assert levels[50] == pytest.approx(-3.0103 - 3.0103, abs=0.05)  # onset frame: half its window


def test_instant_tone_has_no_attack():
    onset = 0.3333
    x = np.concatenate([np.zeros(int(round(onset * SR))), sine(1.0)])
    attacks = m.note_attacks(m.level_curve(x, SR), [onset], [onset + 1.0])
    assert attacks[0] == pytest.approx(0.0, abs=0.006)


def test_fade_in_attack_is_when_the_level_is_6_db_down():
    # 200 ms fade-in linear in dB from -60 dB to 0 dB, then steady: -6 dB is reached at 180 ms
    x = sine(1.5) * db_envelope([(0.0, -60.0), (0.2, 0.0), (1.5, 0.0)], 1.5)
    x = np.concatenate([np.zeros(SR // 2), x])
    attacks = m.note_attacks(m.level_curve(x, SR), [0.5], [2.0])
    assert attacks[0] == pytest.approx(0.18, abs=0.01)


def test_touching_notes_with_a_known_dip():
    # two 1 s notes joined at 1.0 s; the level drops by 12 dB for 60 ms around the join (10 ms ramps)
    env = db_envelope([(0.0, 0.0), (0.96, 0.0), (0.97, -12.0), (1.03, -12.0), (1.04, 0.0), (2.0, 0.0)], 2.0)
    x = sine(2.0) * env
    dips = m.legato_dips(m.level_curve(x, SR), [0.0, 1.0], [1.0, 2.0])
    assert dips.shape == (1,)
    assert dips[0] == pytest.approx(12.0, abs=0.2)
    smooth = m.legato_dips(m.level_curve(sine(2.0), SR), [0.0, 1.0], [1.0, 2.0])
    assert smooth[0] == pytest.approx(0.0, abs=0.05)


def test_only_touching_notes_are_joins():
    assert m.legato_joins([0.0, 1.0, 2.1, 3.14], [1.0, 2.08, 3.1, 4.0]).tolist() == [0, 1]


def test_steady_sine_has_no_within_note_std_and_a_tremolo_has_its_std():
    levels = m.level_curve(sine(3.0), SR)
    assert m.within_note_std(levels, [0.0], [3.0])[0] == pytest.approx(0.0, abs=0.01)
    # level = 3 dB x sin(2 Hz): over the middle 60 % of a 2.5 s note (1.5 s = 3 periods) std = 3 / sqrt(2)
    t = np.arange(int(2.5 * SR)) / SR
    x = sine(2.5) * 10 ** (3.0 * np.sin(2 * np.pi * 2.0 * t) / 20)
    std = m.within_note_std(m.level_curve(x, SR), [0.0, 2.6], [2.5, 2.8])  # the second note is too short
    assert std.shape == (1,)
    assert std[0] == pytest.approx(3.0 / np.sqrt(2.0), abs=0.05)


def test_sine_at_minus_20_dbfs_reads_minus_23_lufs():
    assert m.loudness_lufs(sine(5.0, amplitude=0.1), SR) == pytest.approx(-23.0, abs=0.2)


def test_timbre_distance_is_zero_to_itself_and_to_a_scaled_copy():
    rng = np.random.default_rng(0)
    x = sine(2.0, 440.0) + 0.3 * sine(2.0, 880.0) + 0.01 * rng.standard_normal(2 * SR)
    assert m.timbre_distance(x, x, SR) == pytest.approx(0.0, abs=1e-9)
    assert m.timbre_distance(0.05 * x, x, SR) == pytest.approx(0.0, abs=1e-6)
    square = 0.5 * signal.square(2 * np.pi * 440.0 * np.arange(2 * SR) / SR)
    assert m.timbre_distance(square, x, SR) > 5.0


def test_timbre_distance_ignores_what_happens_where_the_reference_is_silent():
    x = np.concatenate([sine(1.0, 440.0), np.zeros(SR)])
    noisy = x.copy()
    noisy[int(1.2 * SR):] = 0.3 * np.random.default_rng(1).standard_normal(SR - int(0.2 * SR))
    assert m.timbre_distance(noisy, x, SR) == pytest.approx(0.0, abs=1e-6)


def test_mel_filterbank_covers_64_bands_from_40_hz_to_0_9_nyquist():
    bank = m.mel_filterbank(SR, 2048)
    assert bank.shape == (64, 1025)
    assert (bank.max(axis=1) > 0).all()
    freqs = np.arange(1025) * SR / 2048
    assert freqs[bank[0] > 0].min() >= 40.0
    assert freqs[bank[-1] > 0].max() <= 0.9 * SR / 2


def test_band_energy_above_8_khz():
    noise = np.random.default_rng(0).standard_normal(4 * SR)
    assert m.band_energy_db(noise, SR) == pytest.approx(10 * np.log10(16 / 24), abs=0.1)  # white: 16 of 24 kHz
    sos = signal.ellip(12, 0.1, 100, 7500, output="sos", fs=SR)
    assert m.band_energy_db(signal.sosfilt(sos, noise), SR) < -60.0
    assert m.band_energy_db(np.zeros(100), SR) == -150.0
