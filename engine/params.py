"""The frame-level synthesis parameters shared by every level: what a synthesis generator fills and the DSP renders.

Frames are at `FRAME_RATE` (250 /s, MIDI-DDSP's 4 ms hop); frame k describes time k / FRAME_RATE seconds of the
voice. Units:
- `f0`: fundamental in Hz, (frames,).
- `amplitude`: linear peak amplitude of the harmonic part, (frames,); 1.0 is a full-scale sine.
- `harmonics`: harmonic distribution, (frames, n_harmonics), non-negative, each frame sums to 1 over the
  harmonics below `max_hz` (or is all zero in silence).
- `noise`: linear magnitudes of `n_bands` noise bands spaced evenly over 0..`max_hz`, (frames, n_bands). A flat
  magnitude m over the whole band gives noise with the power of uniform noise in [-m, m] (RMS m / sqrt(3)).
- `max_hz`: the band the parameters were made for (half the training sample rate). Harmonics and noise above it
  are never rendered, whatever the output rate: a model cannot know what it never heard.

A SynthParams may hold a window of a voice, frames [first_frame, first_frame + n_frames) of `voice_frames`, with the
fundamental's phase at its first frame (`start_phase`, engine.core.frame_phase_steps): the DSP renders any samples
the window reaches exactly as from the whole voice (a streamed render holds a few seconds of parameters at a time).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

FRAME_RATE = 250
N_HARMONICS = 60  # presets made before the full band; new ones say how many they have
N_NOISE_BANDS = 65
FULL_BAND_HZ = 20000.0  # the band a preset covers when its training rate allows: nothing above is audible


def band_hz(sample_rate: float) -> float:
    """The band parameters made from audio at `sample_rate` cover: up to 20 kHz or the Nyquist frequency."""
    return min(FULL_BAND_HZ, sample_rate / 2.0)


PARAM_TENSORS = ("f0", "amplitude", "harmonics", "noise")  # SynthParams' tensors, in field order


@dataclass
class SynthParams:
    f0: torch.Tensor  # (frames,) Hz
    amplitude: torch.Tensor  # (frames,) linear
    harmonics: torch.Tensor  # (frames, n_harmonics), rows sum to 1 (or 0)
    noise: torch.Tensor  # (frames, n_bands) linear magnitudes
    max_hz: float = 8000.0
    first_frame: int = 0  # the voice frame these frames start at
    voice_frames: int = 0  # frames of the whole voice (0: these are the whole voice)
    start_phase: int = 0  # phase of the fundamental at first_frame, in engine.core.PHASE_UNIT steps

    @property
    def n_frames(self) -> int:
        return self.f0.shape[0]

    @property
    def total_frames(self) -> int:
        """Frames of the whole voice these frames belong to."""
        return self.voice_frames or self.first_frame + self.n_frames

    def window(self, first_frame: int, voice_frames: int, start_phase: int) -> "SynthParams":
        """The same tensors as frames [first_frame, first_frame + n_frames) of a voice of voice_frames frames."""
        return SynthParams(self.f0, self.amplitude, self.harmonics, self.noise, self.max_hz, first_frame,
                           voice_frames, start_phase)

    def frames(self, start: int, stop: int) -> "SynthParams":
        """The frames [start, stop) as a new SynthParams (views, no copy)."""
        return SynthParams(self.f0[start:stop], self.amplitude[start:stop], self.harmonics[start:stop],
                           self.noise[start:stop], self.max_hz)

    @classmethod
    def silence(cls, n_frames: int, n_harmonics: int = N_HARMONICS, n_bands: int = N_NOISE_BANDS,
                max_hz: float = 8000.0) -> "SynthParams":
        return cls(torch.zeros(n_frames), torch.zeros(n_frames), torch.zeros(n_frames, n_harmonics),
                   torch.zeros(n_frames, n_bands), max_hz)


def normalize_harmonics(harmonics: torch.Tensor, f0: torch.Tensor, max_hz: float) -> torch.Tensor:
    """Zero the harmonics at or above `max_hz` and rescale each frame to sum to 1.

    harmonics: (..., frames, n_harmonics) non-negative; f0: (..., frames) Hz -> same shape as `harmonics`.
    """
    numbers = torch.arange(1, harmonics.shape[-1] + 1, dtype=harmonics.dtype, device=harmonics.device)
    audible = (f0.unsqueeze(-1) * numbers < max_hz).to(harmonics.dtype)
    harmonics = harmonics * audible
    return harmonics / harmonics.sum(-1, keepdim=True).clamp_min(1e-12)


def frames_for(seconds: float) -> int:
    """Number of frames covering `seconds` (one extra so the last instant has a frame)."""
    return int(seconds * FRAME_RATE) + 2
