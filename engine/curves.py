"""Note curves on the frame parameters: level 3 edited per note (pitch bend, expression, pressure, slide).

A note's curves (daw_bridge.curves: `cents`, `gain_db`, `brightness`, breakpoints in seconds from its onset) are
sampled at the frame rate over the frames the note owns (engine.model.frame_owners: its sounding frames; at a legato
join the later note's frames are its own) and applied to the final parameters, after the controls' projection:

- cents: f0 x 2^(cents / 1200); harmonics that the new f0 pushes to max_hz or above are dropped (renormalised);
- gain_db: harmonic amplitude and noise magnitudes x 10^(dB / 20);
- brightness: per frame, the harmonic distribution is tilted by k^-alpha (alpha solved per frame) so its centroid
  moves by 12 x offset harmonics, i.e. engine.expression.brightness moves by the offset; a centroid out of reach
  (below 1, or above the frame's audible harmonic count) stops at the nearest reachable one.

Frames of notes without curves are left exactly as they are (an incremental re-render finds changed frames by
comparing parameters). The controls the lanes show are the controls the notes are rendered with, the input of the
projection; `sounding_controls` measures the controls from the final parameters (what sounds, curves included).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .expression import extract_controls
from .model import frame_owners
from .notes import Note
from .params import FRAME_RATE, SynthParams


def sample_curve(points: Sequence[tuple[float, float]], t: np.ndarray) -> np.ndarray:
    """Breakpoints ((t, v), ...) sampled at times t (n,) -> (n,): linear between points, held outside them, at a
    step (two points at one time) the later value from that time on."""
    times = np.array([p[0] for p in points], dtype=np.float64)
    values = np.array([p[1] for p in points], dtype=np.float64)
    right = np.searchsorted(times, t, side="right")  # first point after t
    lo = np.clip(right - 1, 0, len(points) - 1)
    hi = np.clip(right, 0, len(points) - 1)
    span = times[hi] - times[lo]
    weight = np.where(span > 0, (t - times[lo]) / np.where(span > 0, span, 1.0), 0.0)
    return np.where(t < times[0], values[0], values[lo] + (values[hi] - values[lo]) * np.clip(weight, 0.0, 1.0))


def apply_curves(params: SynthParams, notes: Sequence[Note], first: int = 0,
                 voice_frames: int | None = None) -> SynthParams:
    """One voice's final parameters with its notes' curves applied (module docstring). -> new SynthParams, or
    `params` itself when no note has curves. params may be frames [first, ...) of a voice of voice_frames frames,
    `notes` all that reach them (a curve acts frame by frame: any window gets the whole voice's floats)."""
    if not any(note.curves for note in notes):
        return params
    n_frames = params.n_frames if voice_frames is None else voice_frames
    owner = frame_owners(notes, n_frames, first, first + params.n_frames)
    f0, amplitude = params.f0.clone(), params.amplitude.clone()
    harmonics, noise = params.harmonics.clone(), params.noise.clone()
    for i, note in enumerate(notes):
        if not note.curves:
            continue
        frames = np.nonzero(owner == i)[0]
        if frames.size == 0:
            continue
        t = (frames + first) / FRAME_RATE - note.onset
        index = torch.from_numpy(frames)
        cents = note.curve("cents")
        if cents is not None:
            new_f0 = f0[index].double() * torch.from_numpy(2.0 ** (sample_curve(cents, t) / 1200.0))
            f0[index] = new_f0.float()
            harmonics[index] = _audible(harmonics[index], f0[index], params.max_hz)
        gain_db = note.curve("gain_db")
        if gain_db is not None:
            gain = torch.from_numpy(10.0 ** (sample_curve(gain_db, t) / 20.0))
            amplitude[index] = (amplitude[index].double() * gain).float()
            noise[index] = (noise[index].double() * gain[:, None]).float()
        brightness = note.curve("brightness")
        if brightness is not None:
            offset = sample_curve(brightness, t)
            shifted = shift_centroid(harmonics[index].double().numpy(), 12.0 * offset)
            harmonics[index] = torch.from_numpy(shifted).float()
    return SynthParams(f0, amplitude, harmonics, noise, params.max_hz)


def _audible(harmonics: torch.Tensor, f0: torch.Tensor, max_hz: float) -> torch.Tensor:
    """(frames, H) distributions with the harmonics at or above max_hz at f0 (frames,) dropped, renormalised (frames
    that had nothing audible stay zero)."""
    numbers = torch.arange(1, harmonics.shape[1] + 1, dtype=harmonics.dtype)
    kept = harmonics * (f0[:, None] * numbers < max_hz)
    total = kept.sum(1, keepdim=True)
    return torch.where(total > 0, kept / total.clamp_min(1e-30), kept)


def shift_centroid(harmonics: np.ndarray, shift: np.ndarray, iterations: int = 60) -> np.ndarray:
    """Distributions (frames, H), zero where inaudible -> each tilted by k^-alpha (alpha per frame, bisection) so
    its centroid moves by `shift` (frames,) harmonics, clamped to what the frame can reach. Frames with shift 0 or
    no audible harmonic are returned as they are."""
    out = harmonics.copy()
    numbers = np.arange(1, harmonics.shape[1] + 1, dtype=np.float64)
    audible = harmonics > 0
    rows = np.nonzero((shift != 0) & audible.any(1))[0]
    if rows.size == 0:
        return out
    h, ok = harmonics[rows], audible[rows]
    log_h = np.where(ok, np.log(np.maximum(h, 1e-300)), -np.inf)
    centroid = (h * numbers).sum(1) / h.sum(1)
    highest = np.where(ok, numbers, 0).max(1)
    lowest = np.where(ok, numbers, np.inf).min(1)
    target = np.clip(centroid + shift[rows], lowest + 1e-6, np.maximum(highest - 1e-6, lowest + 1e-6))

    def tilted(alpha: np.ndarray) -> np.ndarray:
        logits = log_h - alpha[:, None] * np.log(numbers)
        weights = np.exp(logits - logits.max(1, keepdims=True))
        return weights / weights.sum(1, keepdims=True)

    low, high = np.full(rows.size, -30.0), np.full(rows.size, 40.0)
    for _ in range(iterations):  # the centroid falls as alpha rises
        alpha = 0.5 * (low + high)
        too_bright = (tilted(alpha) * numbers).sum(1) > target
        low, high = np.where(too_bright, alpha, low), np.where(too_bright, high, alpha)
    out[rows] = tilted(0.5 * (low + high))
    return out


def sounding_controls(voices) -> dict[str, tuple[float, ...]]:
    """The six controls per note id measured from the final parameters of rendered voices (engine.render
    VoiceRender: notes + params): what sounds, curves included (clipped to [0, 1] like every measure)."""
    out = {}
    for voice in voices:
        for note, row in zip(voice.notes, extract_controls(voice.params, voice.notes).tolist()):
            out[note.id] = tuple(round(float(v), 6) for v in row)
    return out
