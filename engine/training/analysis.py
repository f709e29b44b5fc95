"""Audio -> synthesis-parameter targets, by analysis at a known f0 (the dataset builder's measuring instrument).

Harmonics are measured by heterodyning: the fundamental's phase phi(t) is integrated from the frame f0 exactly as
engine.dsp does, each harmonic h is brought to 0 Hz (`audio * exp(-i h phi)`) and averaged under a triangular
window centred on every 4 ms frame. The window's half-width is a whole number of periods (at least
`MIN_WINDOW_SECONDS`), so every other harmonic falls on a zero of its response: for a steady tone each harmonic's
complex amplitude (its "phasor") is exact, and `2 |phasor|` is its linear peak amplitude. Variable-width windows cost
O(samples) per harmonic through a double running sum.

From the phasors:
- `refine_f0`: the phasors of harmonics 1..`REFINE_HARMONICS` rotate when the true pitch differs from the assumed
  one; their rotation speed corrects f0 (the soundfont's own tuning and vibrato, a pitch tracker's coarse f0).
- amplitude = sum of harmonic amplitudes below max_hz, harmonics = their distribution (engine/params.py units).
- noise: the audio minus the phase-locked resynthesis of the harmonics, measured per band (65 bands over
  0..max_hz) in the FilteredNoise convention: a flat magnitude m = white noise with the power of uniform noise in
  [-m, m], so m = sqrt(3 * per-bin variance).
- loudness_db: A-weighted frame power in dB relative to a full-scale sine (floor `LOUDNESS_FLOOR_DB`).
"""
from __future__ import annotations

import math

import numpy as np

from ..params import FRAME_RATE, N_HARMONICS, N_NOISE_BANDS

MIN_WINDOW_SECONDS = 0.010  # half-width of the harmonic analysis window, at least one period
REFINE_HARMONICS = 6
REFINE_ITERATIONS = 3
MAX_REFINE_SEMITONES = 1.0
SILENCE_AMPLITUDE = 1e-4  # -80 dB: below this a frame's harmonic distribution is all zero
NOISE_WINDOW_SECONDS = 0.016
NOISE_SMOOTH_FRAMES = 5  # triangular smoothing of the noise power over time (frames, odd)
LOUDNESS_WINDOW_SECONDS = 0.064
LOUDNESS_FLOOR_DB = -100.0


def n_frames_for(n_samples: int, sample_rate: int) -> int:
    """Frames at FRAME_RATE covering n_samples: frame k at sample k * sample_rate / FRAME_RATE, the last at or
    after the last sample."""
    return int(math.ceil((n_samples - 1) * FRAME_RATE / sample_rate)) + 1 if n_samples > 0 else 0


def fundamental_phase(f0: np.ndarray, sample_rate: int, n_samples: int) -> np.ndarray:
    """Phase (radians, float64, unwrapped) of the fundamental at each sample, integrated as engine.dsp does:
    f0 linear between frames. f0: (F,) Hz -> (n_samples,)."""
    f0 = np.asarray(f0, dtype=np.float64)
    if f0.shape[0] < 2:
        f0 = np.repeat(f0[:1], 2)
    frame_phase = np.concatenate([[0.0], np.cumsum(2 * np.pi * 0.5 * (f0[:-1] + f0[1:]) / FRAME_RATE)])
    position = np.arange(n_samples, dtype=np.float64) * (FRAME_RATE / sample_rate)
    index = np.clip(np.floor(position), 0, f0.shape[0] - 2).astype(np.int64)
    u = np.clip(position - index, 0.0, None)
    f_start, f_end = f0[index], f0[index + 1]
    return frame_phase[index] + 2 * np.pi / FRAME_RATE * (f_start * u + 0.5 * (f_end - f_start) * u * u)


def window_half_widths(f0: np.ndarray, sample_rate: int) -> np.ndarray:
    """Triangle half-width per frame in samples: a whole number of periods, at least MIN_WINDOW_SECONDS.
    f0: (F,) Hz -> (F,) int64 >= 1."""
    f0 = np.maximum(np.asarray(f0, dtype=np.float64), 20.0)
    periods = np.maximum(1.0, np.ceil(MIN_WINDOW_SECONDS * f0))
    return np.maximum(1, np.round(periods * sample_rate / f0)).astype(np.int64)


def _frame_centres(n_frames: int, sample_rate: int) -> np.ndarray:
    return np.round(np.arange(n_frames) * (sample_rate / FRAME_RATE)).astype(np.int64)


def harmonic_phasors(audio: np.ndarray, f0: np.ndarray, sample_rate: int, harmonics: int | np.ndarray,
                     phase: np.ndarray | None = None) -> np.ndarray:
    """Complex amplitude of each harmonic at each frame (2 |phasor| = linear peak amplitude).

    audio: (n,) float; f0: (F,) Hz; harmonics: a count H (1..H) or the harmonic numbers -> (F, H) complex128.
    """
    audio = np.asarray(audio, dtype=np.float64)
    numbers = np.arange(1, harmonics + 1) if np.isscalar(harmonics) else np.asarray(harmonics)
    n = audio.shape[0]
    if phase is None:
        phase = fundamental_phase(f0, sample_rate, n)
    half = window_half_widths(f0, sample_rate)
    pad = int(half.max()) + int(math.ceil(sample_rate / FRAME_RATE)) + 2
    centres = _frame_centres(f0.shape[0], sample_rate) + pad
    rotor = np.exp(-1j * phase)
    out = np.zeros((f0.shape[0], len(numbers)), dtype=np.complex128)
    padded = np.zeros(n + 2 * pad, dtype=np.complex128)
    for column, h in enumerate(numbers):
        padded[pad:pad + n] = audio * rotor ** int(h)
        # Triangle of half-width M centred on c = (box M * box M): C2[c+M+1] - 2 C2[c+1] + C2[c-M+1], over M^2.
        c2 = np.concatenate([[0.0], np.cumsum(np.concatenate([[0.0], np.cumsum(padded)]))])
        out[:, column] = (c2[centres + half + 1] - 2 * c2[centres + 1] + c2[centres - half + 1]) / half ** 2
    return out


def refine_f0(audio: np.ndarray, f0: np.ndarray, sample_rate: int, voiced: np.ndarray | None = None,
              iterations: int = REFINE_ITERATIONS, max_semitones: float = MAX_REFINE_SEMITONES) -> np.ndarray:
    """Correct f0 to the audio from the rotation of the low harmonics' phasors.

    audio: (n,); f0: (F,) Hz, the assumed pitch (MIDI + bend, or a tracker's); voiced: (F,) bool, frames to
    correct (default: all with audible harmonics; keep note changes out, where the window hears two pitches)
    -> (F,) float64. Frames whose correction would move more than
    `max_semitones` from the assumed pitch, or that are too quiet to measure, keep the assumed pitch.
    """
    prior = np.asarray(f0, dtype=np.float64)
    current = prior.copy()
    max_hz = sample_rate / 2.0
    for _ in range(iterations):
        numbers = np.arange(1, REFINE_HARMONICS + 1)
        phasors = harmonic_phasors(audio, current, sample_rate, numbers)
        phasors = phasors * (current[:, None] * numbers < 0.9 * max_hz)
        # Rotation per frame (central difference) -> frequency offset of harmonic h, relative to h * f0.
        rotation = np.zeros(phasors.shape)
        rotation[1:-1] = np.angle(phasors[2:] * np.conj(phasors[:-2])) / 2.0
        relative = rotation * FRAME_RATE / (2 * np.pi) / (numbers * np.maximum(current[:, None], 1.0))
        power = np.abs(phasors) ** 2
        weight = np.zeros(power.shape)
        weight[1:-1] = np.minimum(power[:-2], power[2:]) * numbers ** 2
        total = weight.sum(1)
        amplitude = 2 * np.sqrt(power.sum(1))
        ok = (total > 0) & (amplitude > SILENCE_AMPLITUDE * 10)
        if voiced is not None:
            ok &= voiced
        step = np.where(ok, (weight * relative).sum(1) / np.maximum(total, 1e-30), 0.0)
        candidate = current * (1.0 + step)
        moved = np.abs(12 * np.log2(candidate / prior)) <= max_semitones
        current = np.where(ok & moved, candidate, current)
    return current


def harmonic_targets(phasors: np.ndarray, f0: np.ndarray, max_hz: float, n_harmonics: int = N_HARMONICS):
    """Phasors (F, H) -> (amplitude (F,), harmonic distribution (F, n_harmonics)), harmonics at or above max_hz
    dropped; frames quieter than SILENCE_AMPLITUDE get an all-zero distribution."""
    amplitudes = 2 * np.abs(phasors[:, :n_harmonics])
    numbers = np.arange(1, amplitudes.shape[1] + 1)
    amplitudes = amplitudes * (f0[:, None] * numbers < max_hz)
    amplitude = amplitudes.sum(1)
    distribution = np.zeros((f0.shape[0], n_harmonics))
    loud = amplitude >= SILENCE_AMPLITUDE
    distribution[loud, :amplitudes.shape[1]] = amplitudes[loud] / amplitude[loud, None]
    return amplitude, distribution


def harmonic_resynthesis(phasors: np.ndarray, f0: np.ndarray, sample_rate: int, n_samples: int,
                         phase: np.ndarray | None = None) -> np.ndarray:
    """Phase-locked sum of the measured harmonics (phasors interpolated linearly between frames).

    phasors: (F, H) for harmonics 1..H, f0: (F,) -> (n_samples,) float64."""
    if phase is None:
        phase = fundamental_phase(f0, sample_rate, n_samples)
    position = np.arange(n_samples) * (FRAME_RATE / sample_rate)
    index = np.clip(np.floor(position).astype(np.int64), 0, max(phasors.shape[0] - 2, 0))
    u = np.clip(position - index, 0.0, 1.0)
    nxt = np.minimum(index + 1, phasors.shape[0] - 1)
    rotor = np.exp(1j * phase)
    current = np.ones(n_samples, dtype=np.complex128)
    out = np.zeros(n_samples)
    for column in range(phasors.shape[1]):
        current = current * rotor
        if not np.any(phasors[:, column]):
            continue
        p = phasors[index, column] * (1 - u) + phasors[nxt, column] * u
        out += 2 * np.real(p * current)
    return out


def _stft_power(audio: np.ndarray, sample_rate: int, n_frames: int, n_fft: int) -> np.ndarray:
    """|STFT|^2 of Hann frames centred on each frame time (zero padded) -> (F, n_fft // 2 + 1), and sum(w^2)."""
    hop = sample_rate / FRAME_RATE
    pad = n_fft
    padded = np.zeros(audio.shape[0] + 2 * pad)
    padded[pad:pad + audio.shape[0]] = audio
    starts = np.round(np.arange(n_frames) * hop).astype(np.int64) + pad - n_fft // 2
    window = np.hanning(n_fft + 1)[:-1]
    frames = padded[starts[:, None] + np.arange(n_fft)] * window
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2, float((window ** 2).sum())


def smooth_frames(x: np.ndarray, width: int) -> np.ndarray:
    """Triangular moving average over axis 0 (edges renormalised). x: (F, ...) -> same shape."""
    if width <= 1:
        return x
    kernel = np.bartlett(width + 2)[1:-1]
    kernel /= kernel.sum()
    pad = width // 2
    padded = np.pad(x, [(pad, pad)] + [(0, 0)] * (x.ndim - 1))
    ones = np.pad(np.ones(x.shape[0]), pad)
    out = sum(k * padded[i:i + x.shape[0]] for i, k in enumerate(kernel))
    norm = sum(k * ones[i:i + x.shape[0]] for i, k in enumerate(kernel))
    return out / norm.reshape((-1,) + (1,) * (x.ndim - 1))


def _pow2(seconds: float, sample_rate: int) -> int:
    return 2 ** int(round(math.log2(seconds * sample_rate)))


def noise_magnitudes(residual: np.ndarray, sample_rate: int, n_frames: int, max_hz: float,
                     n_bands: int = N_NOISE_BANDS) -> np.ndarray:
    """Band magnitudes of a noise signal in the FilteredNoise convention. residual: (n,) -> (F, n_bands).

    Per-bin variance |X|^2 / sum(w^2), smoothed over NOISE_SMOOTH_FRAMES frames (fewer degrees of freedom
    would bias the magnitudes low), pooled over each band with the triangular weights FilteredNoise
    interpolates with (centres at b * max_hz / (n_bands - 1)), then m = sqrt(3 * variance)."""
    n_fft = _pow2(NOISE_WINDOW_SECONDS, sample_rate)
    power, window_power = _stft_power(residual, sample_rate, n_frames, n_fft)
    variance = smooth_frames(power / window_power, NOISE_SMOOTH_FRAMES)
    bins_hz = np.arange(power.shape[1]) * sample_rate / n_fft
    spacing = max_hz / (n_bands - 1)
    centres = np.arange(n_bands) * spacing
    weights = np.maximum(0.0, 1.0 - np.abs(bins_hz[None, :] - centres[:, None]) / spacing)
    weights *= bins_hz[None, :] <= max_hz
    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-12)
    return np.sqrt(3.0 * variance @ weights.T)


def a_weighting_db(freqs_hz: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting in dB (0 dB at 1 kHz)."""
    f2 = np.asarray(freqs_hz, dtype=np.float64) ** 2
    ra = (12194.0 ** 2 * f2 ** 2) / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2))
                                     * (f2 + 12194.0 ** 2))
    return 20 * np.log10(np.maximum(ra, 1e-20)) + 2.0


def a_weighted_loudness(audio: np.ndarray, sample_rate: int, n_frames: int | None = None) -> np.ndarray:
    """Frame loudness: A-weighted mean power in a ~64 ms Hann window centred on each frame, in dB relative to a
    full-scale 1 kHz sine, floored at LOUDNESS_FLOOR_DB. audio: (n,) -> (F,) float64."""
    audio = np.asarray(audio, dtype=np.float64)
    if n_frames is None:
        n_frames = n_frames_for(audio.shape[0], sample_rate)
    n_fft = _pow2(LOUDNESS_WINDOW_SECONDS, sample_rate)
    power, window_power = _stft_power(audio, sample_rate, n_frames, n_fft)
    weights = 10 ** (a_weighting_db(np.arange(power.shape[1]) * sample_rate / n_fft) / 10)
    weights[0] = 0.0
    # Parseval: mean square = (|X_0|^2 + 2 sum |X_k|^2 + ...) / (n_fft * sum w^2); a full-scale sine has 0.5.
    mean_square = 2 * (power * weights).sum(1) / (n_fft * window_power)
    return np.maximum(10 * np.log10(np.maximum(mean_square / 0.5, 1e-30)), LOUDNESS_FLOOR_DB)


def note_change_frames(onsets: np.ndarray, n_frames: int, seconds: float = 0.02) -> np.ndarray:
    """(F,) bool: frames within `seconds` of a note onset (the analysis window hears two notes there)."""
    mask = np.zeros(n_frames, dtype=bool)
    reach = int(math.ceil(seconds * FRAME_RATE))
    for onset in np.asarray(onsets, dtype=np.float64):
        centre = int(round(onset * FRAME_RATE))
        mask[max(0, centre - reach):max(0, min(n_frames, centre + reach + 1))] = True
    return mask


def hold_frames(f0: np.ndarray, hold: np.ndarray) -> np.ndarray:
    """f0 with the `hold` frames replaced by the last frame before them that is not held (the first one that is
    not held, at the start): continuous through rests. f0, hold: (F,) -> (F,)."""
    keep = np.flatnonzero(~hold)
    if keep.size == 0:
        return f0.copy()
    source = np.maximum.accumulate(np.where(~hold, np.arange(f0.shape[0]), -1))
    return f0[np.where(source < 0, keep[0], source)]


def analyze(audio: np.ndarray, f0: np.ndarray, sample_rate: int, refine: bool = True,
            voiced: np.ndarray | None = None, hold: np.ndarray | None = None,
            n_harmonics: int = N_HARMONICS, max_hz: float | None = None) -> dict[str, np.ndarray]:
    """Audio and an assumed f0 -> frame targets at FRAME_RATE (voiced: frames whose f0 may be refined; hold:
    frames whose f0 becomes the last one before them after refinement, e.g. rests; max_hz: the band the targets
    cover, default the Nyquist frequency).

    audio: (n,) float at sample_rate, frame 0 = sample 0; f0: (F,) Hz with F = n_frames_for(n, sample_rate).
    -> {"f0" (F,), "amplitude" (F,), "harmonics" (F, n_harmonics), "noise" (F, 65), "loudness_db" (F,),
        "harmonic_audio" (n,)} all float32 except harmonic_audio (float64, the phase-locked harmonic part).
    """
    audio = np.asarray(audio, dtype=np.float64)
    n = audio.shape[0]
    n_frames = n_frames_for(n, sample_rate)
    f0 = np.asarray(f0, dtype=np.float64)
    if f0.shape != (n_frames,):
        raise ValueError(f"f0 has {f0.shape[0]} frames; {n} samples at {sample_rate} Hz need {n_frames}")
    max_hz = min(max_hz or sample_rate / 2.0, sample_rate / 2.0)
    if refine:
        f0 = refine_f0(audio, f0, sample_rate, voiced=voiced)
    if hold is not None:
        f0 = hold_frames(f0, hold)
    phase = fundamental_phase(f0, sample_rate, n)
    count = int(min(n_harmonics, max(1, math.ceil(max_hz / max(float(f0.min()), 1.0)))))
    phasors = harmonic_phasors(audio, f0, sample_rate, count, phase=phase)
    phasors *= f0[:, None] * np.arange(1, count + 1) < max_hz
    amplitude, distribution = harmonic_targets(phasors, f0, max_hz, n_harmonics)
    harmonic_audio = harmonic_resynthesis(phasors, f0, sample_rate, n, phase=phase)
    noise = noise_magnitudes(audio - harmonic_audio, sample_rate, n_frames, max_hz)
    return {
        "f0": f0.astype(np.float32),
        "amplitude": amplitude.astype(np.float32),
        "harmonics": distribution.astype(np.float32),
        "noise": noise.astype(np.float32),
        "loudness_db": a_weighted_loudness(audio, sample_rate, n_frames).astype(np.float32),
        "harmonic_audio": harmonic_audio,
    }


def spectral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                      seconds: tuple[float, ...] = (0.064, 0.032, 0.016, 0.008)) -> dict[str, float]:
    """Multi-scale magnitude-spectrum distance between two signals of the same length.

    -> {"convergence": mean over scales of ||S_ref - S_est||_F / ||S_ref||_F (0 = same magnitudes),
        "log_db": mean |dB difference| over bins where either is above -80 dB re full scale}."""
    n = min(reference.shape[0], estimate.shape[0])
    convergence, log_db = [], []
    for window in seconds:
        n_fft = _pow2(window, sample_rate)
        frames = n_frames_for(n, sample_rate)
        ref, wp = _stft_power(np.asarray(reference[:n], dtype=np.float64), sample_rate, frames, n_fft)
        est, _ = _stft_power(np.asarray(estimate[:n], dtype=np.float64), sample_rate, frames, n_fft)
        ref_mag, est_mag = np.sqrt(ref), np.sqrt(est)
        convergence.append(np.linalg.norm(ref_mag - est_mag) / max(np.linalg.norm(ref_mag), 1e-12))
        # Magnitude of a full-scale sine in this window: sum(w) / 2.
        scale = 0.5 * (np.hanning(n_fft + 1)[:-1]).sum()
        ref_db = 20 * np.log10(np.maximum(ref_mag / scale, 1e-4))
        est_db = 20 * np.log10(np.maximum(est_mag / scale, 1e-4))
        audible = (ref_db > -80) | (est_db > -80)
        log_db.append(float(np.abs(ref_db - est_db)[audible].mean()) if audible.any() else 0.0)
    return {"convergence": float(np.mean(convergence)), "log_db": float(np.mean(log_db))}


# ---------------------------------------------------------------------------------------------------------------
# Pitch tracking (recordings without a score): PESTO, whose weights ship in its wheel (pesto-pitch).

PESTO_MODEL = "mir-1k_g7"
TRACK_CHUNK_SECONDS = 60.0
TRACK_CONTEXT_SECONDS = 1.0
_pesto_models: dict[int, object] = {}


def _pesto(sample_rate: int):
    """PESTO's model at 4 ms hop. `pesto/__init__.py` imports torchaudio (only for reading files), which fails to
    import beside a CPU-only torch; the package is loaded without running it."""
    if sample_rate not in _pesto_models:
        import importlib.util
        import sys
        import types

        spec = importlib.util.find_spec("pesto")
        if spec is None or spec.submodule_search_locations is None:
            raise ValueError("recordings need the pitch tracker pesto-pitch: pip install pesto-pitch==2.0.1")
        if "pesto" not in sys.modules:
            package = types.ModuleType("pesto")
            package.__path__ = list(spec.submodule_search_locations)
            package.__spec__ = spec
            sys.modules["pesto"] = package
        from pesto.loader import load_model

        _pesto_models[sample_rate] = load_model(PESTO_MODEL, step_size=1000.0 / FRAME_RATE, sampling_rate=sample_rate)
    return _pesto_models[sample_rate]


def track_pitch(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz) and voicing confidence (0..1) at FRAME_RATE, frame k at sample k * sample_rate / FRAME_RATE.

    audio: (n,) -> ((F,), (F,)) with F = n_frames_for(n, sample_rate). Long audio goes through in chunks with
    TRACK_CONTEXT_SECONDS of context on each side."""
    import torch

    model = _pesto(sample_rate)
    n = audio.shape[0]
    n_frames = n_frames_for(n, sample_rate)
    f0, confidence = np.zeros(n_frames), np.zeros(n_frames)
    hop = sample_rate / FRAME_RATE
    chunk = int(TRACK_CHUNK_SECONDS * FRAME_RATE)
    context = int(TRACK_CONTEXT_SECONDS * FRAME_RATE)
    for first in range(0, n_frames, chunk):
        last = min(first + chunk, n_frames)
        lo, hi = max(0, first - context), min(n_frames, last + context)
        piece = np.asarray(audio[int(round(lo * hop)):min(n, int(round(hi * hop)) + 1)], dtype=np.float32)
        with torch.inference_mode():
            pitch, conf, _, _ = model(torch.from_numpy(piece), sr=sample_rate, convert_to_freq=True,
                                      return_activations=True)
        pitch, conf = pitch.numpy().reshape(-1), conf.numpy().reshape(-1)
        take = np.arange(first, last) - lo
        take = np.minimum(take, pitch.shape[0] - 1)
        f0[first:last], confidence[first:last] = pitch[take], conf[take]
    return f0, np.clip(confidence, 0.0, 1.0)


def frame_loudness_db(audio: np.ndarray, sample_rate: int, n_frames: int) -> np.ndarray:
    """(n_frames,) dBFS of the Hann-windowed RMS around each frame time (window 4 frames), floor -100 dB.
    A full-scale sine reads about -3 dB."""
    hop = sample_rate / FRAME_RATE
    width = int(round(4 * hop))
    window = np.hanning(width)
    padded = np.pad(np.asarray(audio, dtype=np.float64), (width // 2, width))
    starts = np.round(np.arange(n_frames) * hop).astype(np.int64)
    frames = padded[starts[:, None] + np.arange(width)]
    power = (frames ** 2 * window).sum(1) / window.sum()
    return (10 * np.log10(np.maximum(power, 1e-10))).astype(np.float32)
