"""Level 3 of the hierarchy: notes + six controls -> frame-level synthesis parameters.

`SynthesisGenerator` is the interface every preset fills: a trained network (engine.model) or the rule-based
`ParametricInstrument` here. The parametric instrument is the *quality baseline*, not the neural instrument: a fixed
harmonic and noise profile shaped by rules that invert the control definitions of engine.expression, so each
control moves what it measures (volume -> mean dB, fluctuation + peak position -> the dB envelope, vibrato -> a
5.5 Hz f0 sine, brightness -> spectral tilt solved for the harmonic centroid, attack noise -> noise level in the
first 40 ms).
"""
from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np
import torch

from .expression import ATTACK_FRAMES, ATTACK_NOISE_OFFSET, VOLUME_OFFSET, note_frames
from .notes import Note
from .params import FRAME_RATE, N_HARMONICS, N_NOISE_BANDS, SynthParams, normalize_harmonics

VIBRATO_RATE_HZ = 5.5
VIBRATO_READING_PER_SEMITONE = 3.75  # engine.expression.vibrato of a 1-semitone sine: 10 x 0.375 (Tukey gain)


class SynthesisGenerator(Protocol):
    max_hz: float

    def generate(self, notes: Sequence[Note], controls: torch.Tensor, n_frames: int) -> SynthParams:
        """One monophonic voice: notes, controls (n_notes, 6) in [0, 1] -> SynthParams of n_frames from time 0."""


def midi_to_hz(pitch: torch.Tensor | float):
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def sounding_frames(note: Note, n_frames: int) -> tuple[int, int]:
    """Frames [start, stop) a generator fills for a note: every frame whose interpolation touches the note, so the
    sample-accurate gate (engine.render) opens on full amplitude."""
    start = min(int(math.floor(note.onset * FRAME_RATE)), n_frames - 1)
    stop = min(int(math.ceil(note.offset * FRAME_RATE)) + 1, n_frames)
    return start, max(stop, start + 1)


class VoiceNotes:
    """A voice's notes (in onset order, not overlapping) and its length in frames, with the frames each note can
    fill or own (its sounding frames and its measured frames, engine.expression.note_frames), to find the notes that
    reach a range of frames without going through them all."""

    def __init__(self, notes: Sequence[Note], n_frames: int):
        self.notes, self.n_frames = list(notes), n_frames
        spans = [(sounding_frames(n, n_frames), note_frames(n, n_frames)) for n in self.notes]
        self.starts = np.array([min(a[0], b[0]) for a, b in spans], dtype=np.int64)
        self.stops = np.maximum.accumulate(np.array([max(a[1], b[1]) for a, b in spans] or [0], dtype=np.int64))
        self.stops = self.stops[:len(self.notes)]
        self.measured = np.array([b for _, b in spans], dtype=np.int64).reshape(-1, 2)  # note_frames per note

    def reaching(self, start: int, stop: int) -> tuple[int, int]:
        """Indices [i0, i1) of the notes whose frames meet frames [start, stop) (perhaps one or two more)."""
        return (int(np.searchsorted(self.stops, start, side="right")),
                int(np.searchsorted(self.starts, stop, side="left")))

    def cover(self, start: int, stop: int) -> tuple[int, int]:
        """Frames [start, stop) extended to the whole of every note that reaches them."""
        i0, i1 = self.reaching(start, stop)
        if i1 <= i0:
            return start, stop
        return min(start, int(self.starts[i0])), max(stop, int(self.stops[i1 - 1]))


def frame_conditioning(notes: Sequence[Note], controls: torch.Tensor, n_frames: int, first: int = 0,
                       stop: int | None = None) -> torch.Tensor:
    """Per-frame inputs of a neural synthesis generator for frames [first, stop) of a voice of n_frames frames
    (default all), (stop - first, 11): six controls, pitch / 127, onset flag, offset flag, position in note (0..1),
    note on (1) or rest (0). `notes`: at least those that reach the frames (VoiceNotes.reaching)."""
    stop = n_frames if stop is None else stop
    cond = torch.zeros(stop - first, 11)
    for note, row in zip(notes, controls):
        start, end = sounding_frames(note, n_frames)
        lo, hi = max(start, first), min(end, stop)
        if hi <= lo:
            continue
        cond[lo - first:hi - first, :6] = row
        cond[lo - first:hi - first, 6] = note.pitch / 127.0
        if lo == start:
            cond[start - first, 7] = 1.0
        if hi == end:
            cond[end - 1 - first, 8] = 1.0
        cond[lo - first:hi - first, 9] = torch.linspace(0.0, 1.0, end - start)[lo - start:hi - start]
        cond[lo - first:hi - first, 10] = 1.0
    return cond


def envelope_db(volume: float, fluctuation: float, peak: float, n: int) -> torch.Tensor:
    """A note's amplitude curve in dB over n frames: mean from `volume`, std from `fluctuation`, maximum at `peak`."""
    mean_db = (volume - VOLUME_OFFSET) * 60.0
    std_db = fluctuation * 60.0 / 2.5
    if n < 2 or std_db <= 0:
        return torch.full((n,), mean_db)
    position = torch.arange(n, dtype=torch.float64) / n
    shape = -(position - min(peak, (n - 1) / n)).abs()
    shape = (shape - shape.mean()) / shape.std(unbiased=False).clamp_min(1e-9)
    return (mean_db + std_db * shape).float()


def tilt_for_centroid(base: np.ndarray, audible: int, centroid: float) -> np.ndarray:
    """Harmonic distribution base * k^-alpha over the first `audible` harmonics with the given centroid (bisection
    on alpha; centroids out of reach give the nearest reachable one). -> (len(base),) summing to 1."""
    numbers = np.arange(1, audible + 1, dtype=np.float64)
    low, high = -3.0, 12.0
    for _ in range(40):
        alpha = 0.5 * (low + high)
        weights = base[:audible] * numbers ** -alpha
        if (weights * numbers).sum() / weights.sum() > centroid:
            low = alpha
        else:
            high = alpha
    out = np.zeros(len(base))
    out[:audible] = weights / weights.sum()
    return out


def vibrato_curve(note: Note, start: int, stop: int, n_frames: int) -> torch.Tensor:
    """Unit sine over frames [start, stop) near VIBRATO_RATE_HZ, with a whole number of cycles over the frames the
    vibrato control is measured on (engine.expression.note_frames), so the reading is not scalloped. -> (stop-start,)"""
    first, last = note_frames(note, n_frames)
    seconds = (last - first) / FRAME_RATE
    cycles = max(1, round(VIBRATO_RATE_HZ * seconds))
    t = (torch.arange(start, stop, dtype=torch.float64) - first) / FRAME_RATE
    return torch.sin(2 * math.pi * cycles / seconds * t).float()


class ParametricInstrument:
    """Rule-based synthesis generator (the baseline preset kind). Settings come from preset.json:
    `harmonic_profile` (relative harmonic amplitudes before tilt), `noise_profile` (relative band magnitudes),
    `sustain_noise_db` (noise below the harmonic amplitude after the attack), `max_hz`; as many harmonics as the
    profile has (at least 60)."""

    def __init__(self, harmonic_profile: Sequence[float] | None = None, noise_profile: Sequence[float] | None = None,
                 sustain_noise_db: float = -45.0, max_hz: float = 8000.0):
        base = np.ones(N_HARMONICS) if harmonic_profile is None else np.asarray(harmonic_profile, dtype=np.float64)
        self.n_harmonics = max(N_HARMONICS, len(base))
        self.harmonic_profile = np.pad(base, (0, self.n_harmonics - len(base))) + 1e-9
        noise = np.ones(N_NOISE_BANDS) if noise_profile is None else np.asarray(noise_profile, dtype=np.float64)
        noise = np.interp(np.linspace(0, 1, N_NOISE_BANDS), np.linspace(0, 1, len(noise)), noise) + 1e-9
        self.noise_shape = torch.tensor(noise / np.exp(np.log(noise).mean()), dtype=torch.float32)  # dB-mean 0
        self.sustain_noise_db = sustain_noise_db
        self.max_hz = max_hz

    reach = 0  # a note's parameters depend on that note alone

    def generate(self, notes: Sequence[Note], controls: torch.Tensor, n_frames: int) -> SynthParams:
        return self.generate_window(VoiceNotes(notes, n_frames), controls, 0, n_frames)

    def generate_window(self, voice: VoiceNotes, controls: torch.Tensor, start: int, stop: int,
                        blocks: dict | None = None) -> SynthParams:
        """Frames [start, stop) of the voice's parameters (controls: (notes, 6), the whole voice's); each note's
        curves are made whole and cut to the window, so any window has the floats of the whole voice."""
        n_frames, notes = voice.n_frames, voice.notes
        params = SynthParams.silence(stop - start, self.n_harmonics, max_hz=self.max_hz)
        i0, i1 = voice.reaching(start, stop)

        def put(tensor: torch.Tensor, lo: int, hi: int, values, per_frame: bool = True) -> None:
            """tensor[lo:hi] = values, in voice frames, inside the window only (values: one row per frame, or one
            value or row for all when not per_frame)."""
            a, b = max(lo, start), min(hi, stop)
            if b > a:
                tensor[a - start:b - start] = values[a - lo:b - lo] if per_frame else values

        last_hz = midi_to_hz(float(notes[max(i0 - 1, 0)].pitch)) if notes else 0.0
        previous_stop = sounding_frames(notes[i0 - 1], n_frames)[1] if i0 > 0 else 0
        for note, row in zip(notes[i0:i1], controls[i0:i1].tolist()):
            volume, fluctuation, peak, vibrato, brightness, attack_noise = row
            first, last = sounding_frames(note, n_frames)
            n = last - first
            put(params.f0, previous_stop, first, last_hz, False)  # hold the pitch through rests: no glides in silence
            hz = midi_to_hz(float(note.pitch))
            extent = vibrato / VIBRATO_READING_PER_SEMITONE
            put(params.f0, first, last, hz * 2.0 ** (extent * vibrato_curve(note, first, last, n_frames) / 12.0))
            amplitude = 10.0 ** (envelope_db(volume, fluctuation, peak, n) / 20.0)
            put(params.amplitude, first, last, amplitude)
            audible = max(1, min(self.n_harmonics, int(self.max_hz / (hz * 2.0 ** (extent / 12.0)))))
            hd = tilt_for_centroid(self.harmonic_profile, audible, max(1.0, 12.0 * brightness))
            put(params.harmonics, first, last, torch.tensor(hd, dtype=torch.float32), False)
            sustain = amplitude[:, None] * 10.0 ** (self.sustain_noise_db / 20.0) * self.noise_shape
            attack = 10.0 ** ((attack_noise - ATTACK_NOISE_OFFSET) * 40.0 / 20.0) * self.noise_shape
            k = min(ATTACK_FRAMES, n)
            sustain[:k] = attack.expand(k, -1)
            put(params.noise, first, last, sustain)
            last_hz, previous_stop = hz, max(previous_stop, last)
        put(params.f0, previous_stop, n_frames, last_hz, False)
        params.harmonics = normalize_harmonics(params.harmonics, params.f0, self.max_hz)
        return params


class RuleExpression:
    """Rule-based expression generator of the parametric preset: controls from velocity and duration.
    volume 0.45..0.85 with velocity; a gentle swell (peak 0.35) on notes over 0.3 s; vibrato on notes over 0.4 s;
    brightness 0.3..0.55 with velocity; moderate attack noise."""

    def generate(self, notes: Sequence[Note]) -> torch.Tensor:
        rows = []
        for note in notes:
            v = note.velocity / 127.0
            long_note = note.duration > 0.3
            rows.append([0.45 + 0.4 * v, 0.12 if long_note else 0.04, 0.35 if long_note else 0.1,
                         0.35 if note.duration > 0.4 else 0.0, 0.3 + 0.25 * v, 0.35 + 0.2 * v])
        return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), 6)
