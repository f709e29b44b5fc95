"""Neural generators of a trained preset (kind "neural"), in torch, sized for CPU.

- `SynthesisNet`: per-frame conditioning (notes + six controls) -> a dilated Conv1d stack at 250 frames/s -> per
  frame: f0 deviation in cents from the note pitch, amplitude in dB, harmonic distribution (log-softmax over the
  audible harmonics; as many harmonics as the preset was trained with), noise band magnitudes in dB. Trained by
  regression on analysis targets, then through the synthesizer (engine.training.train).
- `ExpressionNet`: per-note features (pitch, duration, velocity, neighbours) -> Bi-GRU over the note sequence ->
  six controls in [0, 1].
- `project_controls`: a deterministic last layer that makes the frame parameters carry exactly the controls asked
  for (as engine.expression measures them): per note it sets the dB mean and std of the amplitude, moves the peak
  (blending toward the parametric envelope only when needed), scales the 3-9 Hz f0 component (or adds a 5-ish Hz
  vibrato when the network made none), tilts the harmonic distribution to the asked centroid and shifts the attack
  noise level. The network supplies everything the controls do not pin down: timbre, attack and release shapes,
  noise colour, pitch glides. Controls pooled from real targets are what the targets already carry, so on real
  controls the projection only corrects the network's errors.

Inference has no sampling: the same notes and controls give the same parameters.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy.signal.windows import tukey
from torch import nn

from .expression import (ATTACK_FRAMES, ATTACK_NOISE_OFFSET, DB_FLOOR, VIBRATO_BAND_HZ, VIBRATO_MIN_FRAMES,
                         VOLUME_OFFSET, note_frames)
from .notes import Note
from .params import FRAME_RATE, N_HARMONICS, N_NOISE_BANDS, SynthParams, normalize_harmonics
from .synthesis import VoiceNotes, frame_conditioning, midi_to_hz, sounding_frames

N_FEATURES = 15
N_NOTE_FEATURES = 16
WEIGHTS_FILE = "model.pt"


# ----------------------------------------------------------------------------------------------------- features
def synthesis_features(notes: Sequence[Note], controls: torch.Tensor, n_frames: int, first: int = 0,
                       stop: int | None = None) -> torch.Tensor:
    """(stop - first, 15) for frames [first, stop) of a voice of n_frames frames (default all):
    engine.synthesis.frame_conditioning (11) + pitch centred ((p - 60) / 24), seconds since the onset and until the
    offset (tanh of s / 0.25), log note duration. `notes`: at least those that reach the frames."""
    stop = n_frames if stop is None else stop
    cond = frame_conditioning(notes, controls, n_frames, first, stop)
    extra = torch.zeros(stop - first, 4)
    for note in notes:
        start, end = sounding_frames(note, n_frames)
        lo, hi = max(start, first), min(end, stop)
        if hi <= lo:
            continue
        t = torch.arange(lo, hi, dtype=torch.float32) / FRAME_RATE
        extra[lo - first:hi - first, 0] = (note.pitch - 60) / 24.0
        extra[lo - first:hi - first, 1] = torch.tanh((t - note.onset).clamp_min(0) / 0.25)
        extra[lo - first:hi - first, 2] = torch.tanh((note.offset - t).clamp_min(0) / 0.25)
        extra[lo - first:hi - first, 3] = math.log(max(note.duration, 0.01))
    return torch.cat([cond, extra], 1)


PHRASE_GAP_SECONDS = 0.1  # a rest at least this long ends a phrase
PHRASE_LONG_NOTE = 2.0  # as does a note this many times the median note length (a cadence, a fermata)


def phrase_starts(notes: Sequence[Note]) -> list[int]:
    """Indices of the notes that start a phrase: the first, and each after a rest of PHRASE_GAP_SECONDS or after a
    note PHRASE_LONG_NOTE times the median duration. From the notes alone, so a DAW clip and a score agree."""
    if not notes:
        return []
    median = float(np.median([n.duration for n in notes]))
    starts = [0]
    for i in range(1, len(notes)):
        previous = notes[i - 1]
        if notes[i].onset - previous.offset >= PHRASE_GAP_SECONDS or previous.duration >= PHRASE_LONG_NOTE * median:
            starts.append(i)
    return starts


def note_features(notes: Sequence[Note]) -> torch.Tensor:
    """(n_notes, 16): pitch centred, log duration, velocity, log gap before and after, pitch step before and after
    (octaves), first / last flags; then the phrase context: position in the phrase (0..1), notes left in it
    (tanh of n / 8), pitch above the phrase mean (octaves), log duration over the median, phrase-highest flag, and
    where the note starts and ends in the phrase's time (0..1: which part of a phrase-long crescendo-diminuendo it
    spans). Presets trained on fewer columns read the first ones."""
    rows = []
    starts = phrase_starts(notes) + [len(notes)]
    median = float(np.median([n.duration for n in notes])) if notes else 1.0
    phrase_of = np.zeros(len(notes), dtype=np.int64)
    for k, (a, b) in enumerate(zip(starts, starts[1:])):
        phrase_of[a:b] = k
    for i, note in enumerate(notes):
        prev = notes[i - 1] if i > 0 else None
        nxt = notes[i + 1] if i + 1 < len(notes) else None
        gap_before = note.onset - prev.offset if prev else 1.0
        gap_after = nxt.onset - note.offset if nxt else 1.0
        a, b = starts[phrase_of[i]], starts[phrase_of[i] + 1]
        pitches = [n.pitch for n in notes[a:b]]
        phrase_start, phrase_length = notes[a].onset, max(notes[b - 1].offset - notes[a].onset, 1e-3)
        rows.append([(note.pitch - 60) / 24.0, math.log(max(note.duration, 0.01)), note.velocity / 127.0,
                     math.log(max(gap_before, 0.0) + 0.01), math.log(max(gap_after, 0.0) + 0.01),
                     (note.pitch - prev.pitch) / 12.0 if prev else 0.0, (nxt.pitch - note.pitch) / 12.0 if nxt else 0.0,
                     float(prev is None), float(nxt is None),
                     (i - a) / max(b - a - 1, 1), math.tanh((b - 1 - i) / 8.0), (note.pitch - np.mean(pitches)) / 12.0,
                     math.log(max(note.duration, 0.01) / max(median, 0.01)), float(note.pitch == max(pitches)),
                     (note.onset - phrase_start) / phrase_length, (note.offset - phrase_start) / phrase_length])
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), N_NOTE_FEATURES)


# ------------------------------------------------------------------------------------------------------ networks
class ResidualConv(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(torch.nn.functional.gelu(self.conv(torch.nn.functional.gelu(x))))


class SynthesisNet(nn.Module):
    """features (batch, frames, 15) -> raw outputs (batch, frames, 2 + H + B): cents / 100, (dB + 40) / 40, H
    harmonic logits, (noise dB + 60) / 30 for B bands."""

    def __init__(self, channels: int = 96, dilations: Sequence[int] = (1, 2, 4, 8, 16, 32, 1, 2),
                 n_harmonics: int = N_HARMONICS, n_noise_bands: int = N_NOISE_BANDS):
        super().__init__()
        self.config = {"channels": channels, "dilations": list(dilations), "n_harmonics": n_harmonics,
                       "n_noise_bands": n_noise_bands}
        self.n_harmonics = n_harmonics
        self.inp = nn.Sequential(nn.Linear(N_FEATURES, channels), nn.GELU(), nn.Linear(channels, channels))
        self.blocks = nn.Sequential(*[ResidualConv(channels, d) for d in dilations])
        self.out = nn.Linear(channels, 2 + n_harmonics + n_noise_bands)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.inp(features).transpose(1, 2)
        return self.out(torch.nn.functional.gelu(self.blocks(x)).transpose(1, 2))


def decode(raw: torch.Tensor, n_harmonics: int) -> dict[str, torch.Tensor]:
    """Raw outputs (..., 2 + H + B) -> cents (...), amplitude dB (...), harmonic logits (..., H), noise dB (..., B)."""
    return {"cents": 100.0 * raw[..., 0], "amp_db": -40.0 + 40.0 * raw[..., 1],
            "harmonic_logits": raw[..., 2:2 + n_harmonics], "noise_db": -60.0 + 30.0 * raw[..., 2 + n_harmonics:]}


def audible_mask(f0: torch.Tensor, max_hz: float, n_harmonics: int) -> torch.Tensor:
    """f0 (..., frames) Hz -> (..., frames, H) bool: harmonics below max_hz."""
    return f0.unsqueeze(-1) * torch.arange(1, n_harmonics + 1, dtype=f0.dtype) < max_hz


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.masked_fill(~mask, -1e4), -1)


class ExpressionNet(nn.Module):
    """note features (batch, notes, 16) -> controls (batch, notes, 6) in (0, 1). Presets trained on fewer feature
    columns (`n_features` 9 or 14) read the first ones."""

    def __init__(self, hidden: int = 32, dropout: float = 0.3, n_features: int = 9):
        super().__init__()
        self.config = {"hidden": hidden, "dropout": dropout, "n_features": n_features}
        self.n_features = n_features
        self.inp = nn.Linear(n_features, hidden)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=2, batch_first=True, bidirectional=True, dropout=dropout)
        self.out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 6))

    def start_at(self, mean_controls: torch.Tensor) -> None:
        """Bias the output to the training mean (6,), so what the notes cannot predict stays near it."""
        with torch.no_grad():
            self.out[-1].bias.copy_(torch.logit(mean_controls.clamp(0.02, 0.98)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x, _ = self.gru(self.drop(torch.nn.functional.gelu(self.inp(features[..., :self.n_features]))))
        return torch.sigmoid(self.out(self.drop(x)))


# ------------------------------------------------------------------------------------------ control projection
def _zscore(x: np.ndarray) -> np.ndarray:
    std = x.std()
    return (x - x.mean()) / std if std > 1e-9 else np.zeros_like(x)


def _peak_shape(n: int, peak: float) -> np.ndarray:
    position = np.arange(n) / n
    return _zscore(-np.abs(position - min(peak, (n - 1) / n)))


def warp_peak(x: np.ndarray, peak: float) -> np.ndarray:
    """Stretch a curve (n,) piecewise-linearly in time so its maximum lands at frame round(peak * n), keeping the
    shape of the rise and of the fall."""
    n = x.shape[0]
    old, new = int(np.argmax(x)), min(int(round(peak * n)), n - 1)
    if old == new:
        return x
    j = np.arange(n, dtype=np.float64)
    before = j * old / new if new > 0 else j
    after = old + (j - new) * (n - 1 - old) / (n - 1 - new) if new < n - 1 else j
    return np.interp(np.where(j <= new, before, after), np.arange(n), x)


PEAK_BUMP_LIMIT_DB = 2.0  # largest bump added to move a note's loudest frame; beyond it the curve is time-warped


def bump_peak(z: np.ndarray, peak: float, std_db: float) -> np.ndarray | None:
    """A z-scored curve (n,) with its loudest frame moved to round(peak * n) by adding the smallest raised-cosine
    bump there (a few frames wide), so the rest of the curve (its attack, its sustain) stays as it is; None if that
    takes a bump over PEAK_BUMP_LIMIT_DB at the note's level spread `std_db` or does not work."""
    n = z.shape[0]
    target = min(int(round(peak * n)), n - 1)
    need = float(z.max() - z[target]) + 0.02
    if need * std_db > PEAK_BUMP_LIMIT_DB:
        return None
    width = max(2, n // 40)
    distance = np.abs(np.arange(n) - target) / width
    bumped = _zscore(z + need * 0.5 * (1 + np.cos(np.pi * np.minimum(distance, 1.0))))
    return bumped if abs(int(np.argmax(bumped)) - target) <= max(1, int(0.02 * n)) else None


def project_amplitude(amp_db: np.ndarray, volume: float, fluctuation: float, peak: float) -> np.ndarray:
    """A note's amplitude dB curve (n,) -> same shape with mean (volume - 1) * 60, std fluctuation * 24 and its
    loudest frame at `peak` (within one frame or 2 %). A nearly flat sustain keeps its shape and gets a small bump at
    the peak (a steady note's loudest frame is a detail, not a swell); otherwise the network's curve is time-warped
    to move its peak there (blended with the parametric envelope if that is not enough, e.g. a flat curve)."""
    n = amp_db.shape[0]
    mean_db, std_db = (volume - VOLUME_OFFSET) * 60.0, fluctuation * 60.0 / 2.5
    z = _zscore(amp_db)
    if n > 1:
        bumped = bump_peak(z, peak, std_db)
        if bumped is not None:
            z = bumped
        else:
            z = _zscore(warp_peak(z, peak))
            tri = _peak_shape(n, peak)
            for beta in (0.0, 0.15, 0.3, 0.5, 0.7, 0.85, 1.0):
                blended = _zscore((1 - beta) * z + beta * tri)
                if abs(int(np.argmax(blended)) / n - peak) <= max(1.0 / n, 0.02) or beta == 1.0:
                    z = blended
                    break
    # The measure floors at -80 dB: iterate mean and spread so the floored curve reads the targets.
    mean, scale = mean_db, std_db
    for _ in range(60):
        floored = np.maximum(mean + scale * z, DB_FLOOR)
        if floored.std() <= 1e-9 or abs(floored.mean() - mean_db) + abs(floored.std() - std_db) < 1e-4:
            break
        mean += mean_db - floored.mean()
        scale *= std_db / floored.std() if std_db > 0 else 0.0
    return mean + scale * z


def vibrato_reading(deviation: np.ndarray) -> float:
    """engine.expression.vibrato on a deviation in semitones (n,), in float64 (kept equal; tested)."""
    n = deviation.shape[0]
    if n <= VIBRATO_MIN_FRAMES or n / FRAME_RATE < 1.0 / VIBRATO_BAND_HZ[0]:
        return 0.0
    d = (deviation - deviation.mean()) * tukey(n, 0.5)
    spectrum = np.abs(np.fft.rfft(d)) / n
    freqs = np.fft.rfftfreq(n, 1.0 / FRAME_RATE)
    band = (freqs >= VIBRATO_BAND_HZ[0]) & (freqs <= VIBRATO_BAND_HZ[1])
    return 10.0 * float(spectrum[band].max()) if band.any() else 0.0


def linear_reading(base: np.ndarray, direction: np.ndarray):
    """g -> vibrato_reading(base + g * direction) for notes long enough to have a reading, from two spectra made
    once (the FFT is linear): the same reading up to float64 rounding, without an FFT per evaluation."""
    n = base.shape[0]
    window = tukey(n, 0.5)
    freqs = np.fft.rfftfreq(n, 1.0 / FRAME_RATE)
    band = (freqs >= VIBRATO_BAND_HZ[0]) & (freqs <= VIBRATO_BAND_HZ[1])
    if not band.any():
        return lambda g: 0.0
    fixed = np.fft.rfft((base - base.mean()) * window)[band]
    moving = np.fft.rfft((direction - direction.mean()) * window)[band]
    return lambda g: 10.0 * float((np.abs(fixed + g * moving) / n).max())


def _solve_gain(reading, target: float, tolerance: float = 1e-4) -> float:
    """Smallest-ish g >= 0 with reading(g) ~= target, for a reading that grows about linearly in g."""
    low, high = 0.0, 1.0
    while reading(high) < target and high < 1e4:
        high *= 2.0
    for _ in range(40):
        mid = 0.5 * (low + high)
        if reading(mid) < target:
            low = mid
        else:
            high = mid
        if high - low < tolerance:
            break
    return 0.5 * (low + high)


def project_vibrato(deviation: np.ndarray, target: float, rate_hz: float) -> np.ndarray:
    """A note's f0 deviation in semitones (n,) -> one whose vibrato reading is `target`. The 3-9 Hz part of the
    network's deviation is scaled; if it has (almost) none, a sine at `rate_hz` is added (after 15 % of the note,
    0.15 s fade-in: the median delay and fade of the dataset's pitch-bend vibrato)."""
    n = deviation.shape[0]
    if n <= VIBRATO_MIN_FRAMES or n / FRAME_RATE < 1.0 / VIBRATO_BAND_HZ[0]:
        return deviation
    freqs = np.fft.rfftfreq(n, 1.0 / FRAME_RATE)
    spectrum = np.fft.rfft(deviation - deviation.mean())
    band = np.fft.irfft(spectrum * ((freqs >= 2.5) & (freqs <= 9.5)), n)
    rest = deviation - band
    if vibrato_reading(band) > 0.02:
        gain = _solve_gain(linear_reading(rest, band), target)
        return rest + gain * band
    t = np.arange(n) / FRAME_RATE - 0.15 * n / FRAME_RATE  # starts after 15 % of the note, fades in over 0.15 s
    sine = np.sin(2 * np.pi * rate_hz * t) * np.clip(t / 0.15, 0.0, 1.0)
    gain = _solve_gain(linear_reading(deviation, sine), target)
    return deviation + gain * sine


def project_brightness(harmonics: np.ndarray, brightness: float) -> np.ndarray:
    """A note's harmonic distributions (n, H), zero where inaudible -> tilted by k^-alpha (one alpha per note) so
    the note-mean centroid is 12 * brightness (the nearest reachable one when out of reach)."""
    audible = harmonics > 0
    if not audible.any():
        return harmonics
    width = int(audible.any(0).nonzero()[0].max()) + 1  # the columns past the last audible one stay zero
    if width < harmonics.shape[1]:
        out = np.zeros_like(harmonics)
        out[:, :width] = project_brightness(harmonics[:, :width], brightness)
        return out
    numbers = np.arange(1, harmonics.shape[1] + 1, dtype=np.float64)
    log_h = np.where(audible, np.log(np.maximum(harmonics, 1e-30)), -np.inf)

    def tilted(alpha: float) -> np.ndarray:
        logits = log_h - alpha * np.log(numbers)
        logits = logits - logits.max(1, keepdims=True)
        weights = np.exp(logits)
        return weights / np.maximum(weights.sum(1, keepdims=True), 1e-300)

    def centroid_and_slope(alpha: float) -> tuple[float, float]:
        """Note-mean centroid at alpha and its derivative (minus the mean per-frame covariance of k and ln k)."""
        weights = tilted(alpha)
        mean_k = (weights * numbers).sum(1)
        mean_log_k = (weights * log_numbers).sum(1)
        covariance = (weights * numbers * log_numbers).sum(1) - mean_k * mean_log_k
        return float(mean_k.mean()), -float(covariance.mean())

    # The centroid falls monotonically with alpha: safeguarded Newton inside a shrinking bracket (bisection when a
    # Newton step would leave it), to the precision a 50-step bisection over [-20, 30] reached.
    log_numbers = np.log(numbers)
    target = 12.0 * brightness
    low, high, alpha = -20.0, 30.0, 0.0
    for _ in range(60):
        centroid, slope = centroid_and_slope(alpha)
        if abs(centroid - target) < 1e-12:
            break
        if centroid > target:
            low = alpha
        else:
            high = alpha
        if high - low < 5e-14:
            break
        step = alpha - (centroid - target) / slope if slope < 0 else None
        alpha = step if step is not None and low < step < high else 0.5 * (low + high)
    return tilted(alpha)


def frame_owners(notes: Sequence[Note], n_frames: int, first: int = 0, stop: int | None = None) -> np.ndarray:
    """(stop - first,) int for frames [first, stop) of a voice of n_frames frames (default all): index in `notes`
    of the note each frame belongs to, -1 in rests. A note owns its sounding frames
    (engine.synthesis.sounding_frames), but the frames where a note's controls are measured
    (engine.expression.note_frames) always belong to that note. `notes`: at least those that reach the frames."""
    stop = n_frames if stop is None else stop
    owner = np.full(stop - first, -1, dtype=np.int64)
    for frames in (sounding_frames, note_frames):
        for i, note in enumerate(notes):
            start, end = frames(note, n_frames)
            owner[max(start, first) - first:max(min(end, stop), first) - first] = i
    return owner


def project_controls(params: SynthParams, notes: Sequence[Note], controls: torch.Tensor,
                     vibrato_rate_hz: float = 5.5, couple_noise: bool = True, first: int = 0,
                     voice_frames: int | None = None, only: range | None = None) -> SynthParams:
    """Make `params` carry `controls` (n, 6) per note as engine.expression.extract_controls measures them.

    Works note by note on the measured frames; the note's other frames (just before / after) take the correction
    of the nearest measured frame; the noise moves with the amplitude correction before its attack level is set.
    params may be frames [first, ...) of a voice of voice_frames frames holding every note of `only` (indices into
    `notes`, default all) whole; `notes`: all that reach those frames. -> new SynthParams.
    """
    n_frames = params.n_frames if voice_frames is None else voice_frames
    owner = frame_owners(notes, n_frames, first, first + params.n_frames)
    f0 = params.f0.double().numpy().copy()
    amp_db = 20 * np.log10(np.maximum(params.amplitude.double().numpy(), 1e-12))
    harmonics = params.harmonics.double().numpy().copy()
    noise_db = 20 * np.log10(np.maximum(params.noise.double().numpy(), 1e-12))
    new_amp_db = amp_db.copy()
    numbers = np.arange(1, harmonics.shape[1] + 1)
    rows = controls.tolist()
    for i in range(len(notes)) if only is None else only:
        note, (volume, fluctuation, peak, vibrato, brightness, attack) = notes[i], rows[i]
        a, b = (frame - first for frame in note_frames(note, n_frames))
        mine = np.nonzero(owner == i)[0]
        before, after = mine[mine < a], mine[mine >= b]
        n = b - a
        # amplitude: mean, std, peak
        projected = project_amplitude(amp_db[a:b], volume, fluctuation, peak)
        correction = np.zeros(owner.shape[0])
        correction[a:b] = projected - amp_db[a:b]
        correction[before], correction[after] = correction[a], correction[b - 1]
        new_amp_db[mine] = amp_db[mine] + correction[mine]
        if couple_noise:
            noise_db[mine] += correction[mine, None]  # the noise follows the loudness
        # vibrato
        hz = midi_to_hz(float(note.pitch))
        deviation = 12.0 * np.log2(np.maximum(f0[a:b], 1e-6) / hz)
        f0[a:b] = hz * 2.0 ** (project_vibrato(deviation, vibrato, vibrato_rate_hz) / 12.0)
        # brightness, on the audible harmonics at the (new) f0
        h = harmonics[a:b] * (f0[a:b, None] * numbers < params.max_hz)
        tilted = project_brightness(h / np.maximum(h.sum(1, keepdims=True), 1e-300), brightness)
        harmonics[a:b] = tilted
        harmonics[before] = tilted[0]
        harmonics[after] = tilted[-1]
        # attack noise: shift the first 10 measured frames (fading back over the next 10)
        k = min(ATTACK_FRAMES, n)
        target, delta = (attack - ATTACK_NOISE_OFFSET) * 40.0, 0.0
        for _ in range(20):  # the measure floors at -80 dB: iterate to the shift that reads the target
            delta += target - np.maximum(noise_db[a:a + k] + delta, DB_FLOOR).mean()
        weight = np.clip(1.0 - (np.arange(n) - k + 1) / ATTACK_FRAMES, 0.0, 1.0)
        noise_db[a:b] += delta * weight[:, None]
        noise_db[before] += delta
    on = torch.from_numpy(owner >= 0)
    f0 = torch.from_numpy(f0).float()
    harmonics = normalize_harmonics(torch.from_numpy(harmonics).float(), f0, params.max_hz)
    return SynthParams(f0, torch.from_numpy(10 ** (new_amp_db / 20)).float() * on, harmonics * on[:, None],
                       torch.from_numpy(10 ** (noise_db / 20)).float() * on[:, None], params.max_hz)


# ------------------------------------------------------------------------------------------------ generators
def note_pitch_hz(notes: Sequence[Note], owner: np.ndarray, held: Note | None = None) -> torch.Tensor:
    """(n_frames,) Hz of each frame's note; rests hold the previous note's pitch (before the first owned frame:
    `held`'s, default the first note's)."""
    hz = np.array([midi_to_hz(float(n.pitch)) for n in notes] or [0.0])
    if held is not None:
        hz = np.append(hz, midi_to_hz(float(held.pitch)))
    held_index = -1 if held is not None else 0
    last = np.maximum.accumulate(np.where(owner >= 0, np.arange(owner.shape[0]), -1))
    index = np.where(last >= 0, owner[np.maximum(last, 0)], held_index)
    return torch.from_numpy(hz[index]).float()


def held_note(voice: VoiceNotes, i0: int) -> Note | None:
    """The note whose pitch rests hold before note i0 of the voice: the last earlier note that owns a frame (None
    before the first note: engine.model.note_pitch_hz holds the first note's pitch there)."""
    for j in range(i0 - 1, -1, -1):
        lo, hi = int(voice.starts[j]), max(int(voice.starts[j]) + 1, int(voice.measured[j][1]))
        near0, near1 = voice.reaching(lo, hi)
        owner = frame_owners(voice.notes[near0:near1], voice.n_frames, lo, hi)
        if (owner == j - near0).any():
            return voice.notes[j]
    return voice.notes[0] if voice.notes else None


def raw_to_params(out: dict[str, torch.Tensor], notes: Sequence[Note], n_frames: int, max_hz: float,
                  first: int = 0, held: Note | None = None) -> SynthParams:
    """Decoded outputs of one voice (frames, ...) -> SynthParams: f0 from note pitch + cents, silence between
    notes (f0 held), harmonics softmax over the audible ones. The outputs may be frames [first, ...) of a voice of
    n_frames frames, `notes` all that reach them and `held` the note whose pitch a rest holds before them."""
    owner = frame_owners(notes, n_frames, first, first + out["cents"].shape[0])
    on = torch.from_numpy(owner >= 0)
    cents = torch.where(on, out["cents"].clamp(-300, 300), torch.zeros(()))
    f0 = note_pitch_hz(notes, owner, held) * 2.0 ** (cents / 1200.0)
    amplitude = torch.where(on, 10.0 ** (out["amp_db"].clamp(-100, 6) / 20.0), torch.zeros(()))
    n_harmonics = out["harmonic_logits"].shape[-1]
    harmonics = masked_log_softmax(out["harmonic_logits"], audible_mask(f0, max_hz, n_harmonics)).exp() * on[:, None]
    noise = 10.0 ** (out["noise_db"].clamp(-120, 0) / 20.0) * on[:, None]
    return SynthParams(f0, amplitude, normalize_harmonics(harmonics, f0, max_hz) * on[:, None], noise, max_hz)


def reachable_inputs(notes: Sequence[Note], controls: torch.Tensor, max_hz: float) -> torch.Tensor:
    """Controls as the network sees them: brightness clamped to what the note can reach (centroid between 1 and
    its number of harmonics below max_hz), so asking beyond reach changes nothing rather than something else."""
    controls = controls.clone()
    for i, note in enumerate(notes):
        audible = max(1, math.ceil(max_hz / midi_to_hz(float(note.pitch))) - 1)
        controls[i, 4] = controls[i, 4].clamp(1.0 / 12.0, audible / 12.0)
    return controls


LEGATO_GAP_SECONDS = 0.005  # notes this close (or overlapping) are played legato
LEGATO_MAX_DIP_DB = 6.0  # the level at a legato join stays within this of the quieter neighbour's
LEGATO_ZONE_FRAMES = (8, 12)  # frames before / after the join the bridge may lift (32 ms, 48 ms)


def bridge_legato(params: SynthParams, notes: Sequence[Note], max_dip_db: float = LEGATO_MAX_DIP_DB,
                  noise: bool = True, first: int = 0, voice_frames: int | None = None) -> SynthParams:
    """Keep legato joins connected: where a note starts as the previous one (another pitch) ends, the amplitude in
    the zone around the join is lifted to at most `max_dip_db` below the quieter of the two notes' levels next to
    it (medians over 12 frames), the noise with it. The analysis a network learns from measures the harmonics at
    one pitch, so at a pitch change its targets dip far deeper than the audio does (26 dB against 9 dB, median of
    121 joins of the flute's musical pieces): without this every join would sound like a release to near silence.
    params: one voice -> new SynthParams (the same object when nothing changes); noise False leaves the noise (the
    dataset's targets, whose noise already holds the previous note's release). params may be frames
    [first, ...) of a voice of voice_frames frames: joins that read frames outside them are left (BRIDGE_REACH)."""
    amp_db = 20 * np.log10(np.maximum(params.amplitude.double().numpy(), 1e-12))
    lift = np.zeros_like(amp_db)
    n_frames = amp_db.shape[0] if voice_frames is None else voice_frames
    before, after = LEGATO_ZONE_FRAMES
    for previous, note in zip(notes, notes[1:]):
        if note.onset - previous.offset > LEGATO_GAP_SECONDS or note.pitch == previous.pitch:
            continue
        join = int(round(note.onset * FRAME_RATE))
        low = max(int(round(previous.onset * FRAME_RATE)), join - before - 12)
        last = min(int(round(note.offset * FRAME_RATE)), join + after + 12, n_frames)
        if join - before - low < 3 or last - (join + after) < 3:
            continue  # notes too short to have a level of their own next to the join
        if low < first or last > first + amp_db.shape[0]:
            continue  # beyond these frames
        join, low, last = join - first, low - first, last - first
        level = min(np.median(amp_db[low:join - before]), np.median(amp_db[join + after:last]))
        zone = slice(join - before, join + after)
        lift[zone] = np.maximum(lift[zone], level - max_dip_db - amp_db[zone])
    if not (lift > 0).any():
        return params
    gain = torch.from_numpy(10 ** (np.maximum(lift, 0.0) / 20)).float()
    return SynthParams(params.f0, params.amplitude * gain, params.harmonics,
                       params.noise * gain[:, None] if noise else params.noise, params.max_hz)


NET_BLOCK_FRAMES = 2048  # the network runs on these blocks of frames (plus its receptive field each side)
BRIDGE_REACH = 40  # frames beyond a note's that the legato bridges near it read (zone 8 + 12, medians 12 + 12)


class NeuralSynthesis:
    """SynthesisGenerator of a neural preset: SynthesisNet + control projection.

    Generated a window of frames at a time (`generate_window`), in memory that does not grow with the voice: the
    network runs on fixed blocks of NET_BLOCK_FRAMES frames from frame 0, each with its receptive field of context
    each side, so a frame's raw outputs are the same floats whichever window asks for them; the legato bridges and
    the projection then work on the whole notes that reach the window (they act per note). `generate` is the
    window of the whole voice."""

    def __init__(self, net: SynthesisNet, max_hz: float, vibrato_rate_hz: float = 5.5, project: bool = True,
                 bridge: bool = True):
        self.net = net.eval()
        self.max_hz = max_hz
        self.vibrato_rate_hz = vibrato_rate_hz
        self.project = project
        self.bridge = bridge  # full-band presets: legato joins kept connected (bridge_legato)

    @property
    def reach(self) -> int:
        """Frames beyond a note's own that its parameters depend on (the network's receptive field: kernel 3, so
        each layer reaches `dilation` frames each side; then the legato bridges)."""
        return sum(self.net.config["dilations"]) + BRIDGE_REACH

    def generate(self, notes: Sequence[Note], controls: torch.Tensor, n_frames: int) -> SynthParams:
        return self.generate_window(VoiceNotes(notes, n_frames), controls, 0, n_frames)

    def generate_window(self, voice: VoiceNotes, controls: torch.Tensor, start: int, stop: int,
                        blocks: dict | None = None) -> SynthParams:
        """Frames [start, stop) of the voice's parameters (controls: (notes, 6), all of the voice's). `blocks`: raw
        network outputs by block, kept between calls (a caller going through a voice in order computes each block
        once; it may drop old ones)."""
        if not voice.notes:
            return SynthParams.silence(stop - start, self.net.n_harmonics, self.net.config["n_noise_bands"],
                                       self.max_hz)
        p0, p1 = voice.cover(start, stop)
        r0, r1 = max(0, p0 - BRIDGE_REACH), min(voice.n_frames, p1 + BRIDGE_REACH)
        out = decode(self.raw_frames(voice, controls, r0, r1, {} if blocks is None else blocks), self.net.n_harmonics)
        i0, i1 = voice.reaching(r0, r1)
        notes = voice.notes[i0:i1]
        params = raw_to_params(out, notes, voice.n_frames, self.max_hz, r0, held_note(voice, i0))
        if self.bridge:  # before the projection, so the parameters still carry exactly the controls asked for
            params = bridge_legato(params, notes, first=r0, voice_frames=voice.n_frames)
        if self.project:
            m0, m1 = voice.reaching(start, stop)
            params = project_controls(params, notes, controls[i0:i1], self.vibrato_rate_hz, first=r0,
                                      voice_frames=voice.n_frames, only=range(max(m0, i0) - i0, min(m1, i1) - i0))
        return params.frames(start - r0, stop - r0)

    def raw_frames(self, voice: VoiceNotes, controls: torch.Tensor, start: int, stop: int,
                   blocks: dict) -> torch.Tensor:
        """The network's raw outputs for frames [start, stop) of the voice, (stop - start, 2 + H + B), from the
        blocks of NET_BLOCK_FRAMES (made when `blocks` lacks them, and put there)."""
        size, context, n_frames = NET_BLOCK_FRAMES, sum(self.net.config["dilations"]), voice.n_frames
        for key in [k for k in blocks if (k + 1) * size <= start]:
            del blocks[key]  # behind: a caller going forward needs them no more
        pieces = []
        for k in range(start // size, (stop - 1) // size + 1):
            if k not in blocks:
                b0, b1 = k * size, min((k + 1) * size, n_frames)
                g0, g1 = max(0, b0 - context), min(n_frames, b1 + context)
                i0, i1 = voice.reaching(g0, g1)
                notes = voice.notes[i0:i1]
                features = synthesis_features(notes, reachable_inputs(notes, controls[i0:i1], self.max_hz),
                                              n_frames, g0, g1)
                with torch.no_grad():
                    blocks[k] = self.net(features[None])[0, b0 - g0:b1 - g0].clone()
            pieces.append(blocks[k])
        offset = start // size * size
        return torch.cat(pieces)[start - offset:stop - offset]


class NeuralExpression:
    """ExpressionGenerator of a neural preset."""

    def __init__(self, net: ExpressionNet):
        self.net = net.eval()

    def generate(self, notes: Sequence[Note]) -> torch.Tensor:
        if not notes:
            return torch.zeros(0, 6)
        with torch.no_grad():
            return self.net(note_features(notes)[None])[0].clamp(0.0, 1.0)


# -------------------------------------------------------------------------------------------------- weights
def save_weights(path: str | Path, synthesis: SynthesisNet, expression: ExpressionNet) -> None:
    """Both networks with their configs, float32, written atomically."""
    from daw_bridge.files import write_atomic

    state = {"synthesis": {"config": synthesis.config, "state": synthesis.state_dict()},
             "expression": {"config": expression.config, "state": expression.state_dict()}}
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_networks(path: str | Path) -> tuple[SynthesisNet, ExpressionNet]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    synthesis = SynthesisNet(**state["synthesis"]["config"])
    synthesis.load_state_dict(state["synthesis"]["state"])
    expression = ExpressionNet(**state["expression"]["config"])
    expression.load_state_dict(state["expression"]["state"])
    return synthesis.eval(), expression.eval()
