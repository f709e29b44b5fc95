"""Listening-relevant checks shared by the preset tests: not silent, not clipped, energy at the expected pitch."""
import numpy as np


def harmonic_energy_fraction(audio: np.ndarray, sample_rate: int, f0: float, tolerance: float = 0.03) -> float:
    """Share of the spectral energy above 20 Hz within +-3 % (at most a quarter of f0) of a multiple of f0."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    band = freqs > 20
    ratio = freqs[band] / f0
    k = np.round(ratio)
    near = (k >= 1) & (np.abs(ratio - k) <= np.minimum(tolerance * k, 0.25))
    return float(spectrum[band][near].sum() / spectrum[band].sum())


def assert_listenable(audio: np.ndarray, sample_rate: int, segments=()):
    """segments: [(start s, stop s, f0 Hz)] where one note sounds alone."""
    assert np.isfinite(audio).all()
    peak = float(np.abs(audio).max())
    rms = float(np.sqrt(np.mean(audio ** 2)))
    assert peak < 1.0, f"clipped: peak {peak:.3f}"
    assert rms > 1e-3, f"silent: rms {rms:.2e}"
    for start, stop, f0 in segments:
        part = audio[int(start * sample_rate):int(stop * sample_rate)]
        fraction = harmonic_energy_fraction(part, sample_rate, f0)
        assert fraction > 0.7, f"only {fraction:.2f} of the energy at multiples of {f0:.1f} Hz"
