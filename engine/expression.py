"""Level 2 of the hierarchy: the six per-note expression controls.

Each control is pooled over a note's frames of `SynthParams`, following MIDI-DDSP's definitions, and clipped to
[0, 1]. What each means on a DAW lane (0 -> 1):

| control | measured as | 0 | 1 |
|---|---|---|---|
| volume | mean amplitude in dB over the note, `dB / 60 + 1` | -60 dB or quieter | 0 dB (full-scale sine) |
| volume_fluctuation | std of amplitude dB over the note, `std * 2.5 / 60` | steady | 24 dB std |
| volume_peak_position | loudest frame's index / note frames | peak at the onset | peak at the end |
| vibrato | 10 x strongest 3-9 Hz f0 extent, semitones (see `vibrato`) | none | ~0.27 semitone sine |
| brightness | harmonic centroid / 12 (MIDI-DDSP's 5 x mean over its 60 harmonics of `harmonics * [1..60]`) | pure fundamental | centroid at harmonic 12 |
| attack_noise | mean noise dB over bands and the first 10 frames, `dB / 40 + 1.875` | -75 dB or less | -35 dB or more |

Two documented changes from MIDI-DDSP, same slopes: volume uses `+1` where MIDI-DDSP uses `+1.5`, and attack_noise
`+1.875` where it uses `+2.625`, because our amplitude unit is a full-scale sine (MIDI-DDSP's sits 30 dB lower);
otherwise a loud note would clip at volume 1.

The expression generator interface (notes -> controls) lives here too; presets provide implementations.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import torch
from scipy.signal.windows import tukey

from .notes import CONTROL_NAMES, Note
from .params import FRAME_RATE, SynthParams

DB_FLOOR = -80.0
VOLUME_OFFSET = 1.0
ATTACK_NOISE_OFFSET = 1.875
ATTACK_FRAMES = 10
BRIGHTNESS_CENTROID = 12.0  # brightness 1 = harmonic centroid at harmonic 12
VIBRATO_MIN_FRAMES = 50
VIBRATO_BAND_HZ = (3.0, 9.0)


class ExpressionGenerator(Protocol):
    def generate(self, notes: Sequence[Note]) -> torch.Tensor:
        """notes of one monophonic voice -> controls (n_notes, 6) in [0, 1]."""


def to_db(x: torch.Tensor) -> torch.Tensor:
    """Linear amplitude -> dB, floored at DB_FLOOR."""
    return (20.0 * torch.log10(x.clamp_min(1e-12))).clamp_min(DB_FLOOR)


def note_frames(note: Note, n_frames: int) -> tuple[int, int]:
    """Frame range [start, stop) covered by a note (at least one frame)."""
    start = min(int(round(note.onset * FRAME_RATE)), n_frames - 1)
    stop = min(max(int(round(note.offset * FRAME_RATE)), start + 1), n_frames)
    return start, stop


def volume(amplitude_db: torch.Tensor) -> float:
    return float(amplitude_db.mean()) / 60.0 + VOLUME_OFFSET


def volume_fluctuation(amplitude_db: torch.Tensor) -> float:
    return float(amplitude_db.std(unbiased=False)) * 2.5 / 60.0


def volume_peak_position(amplitude_db: torch.Tensor) -> float:
    return int(torch.argmax(amplitude_db)) / amplitude_db.shape[0]


def vibrato(f0_hz: torch.Tensor, pitch: int) -> float:
    """10 x the extent (semitones) of the strongest 3-9 Hz component of the f0 deviation from the note pitch.

    f0_hz: (frames,). The deviation in semitones, mean removed, Tukey-windowed (alpha 0.5): `|rfft| / frames` at the
    peak bin. A sine of extent A semitones reads ~3.75 A before the x10. Notes of <= 50 frames or with less than
    one cycle at 3 Hz read 0. Unvoiced frames (f0 <= 0) count as on pitch.
    """
    n = f0_hz.shape[0]
    if n <= VIBRATO_MIN_FRAMES or n / FRAME_RATE < 1.0 / VIBRATO_BAND_HZ[0]:
        return 0.0
    f0 = f0_hz.double().numpy()
    target = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    deviation = np.where(f0 > 0, 12.0 * np.log2(np.maximum(f0, 1e-6) / target), 0.0)
    deviation = (deviation - deviation.mean()) * tukey(n, 0.5)
    spectrum = np.abs(np.fft.rfft(deviation)) / n
    freqs = np.fft.rfftfreq(n, 1.0 / FRAME_RATE)
    band = (freqs >= VIBRATO_BAND_HZ[0]) & (freqs <= VIBRATO_BAND_HZ[1])
    if not band.any():
        return 0.0
    return 10.0 * float(spectrum[band].max())


def brightness(harmonics: torch.Tensor) -> float:
    """harmonics: (frames, n_harmonics) distribution -> note-mean harmonic centroid / 12. That is MIDI-DDSP's
    5 x mean(harmonics * [1..60]) for its 60 harmonics, written so it does not depend on how many harmonics a preset
    has (a mean over 100 harmonics would read 0.6 x as much)."""
    numbers = torch.arange(1, harmonics.shape[-1] + 1, dtype=harmonics.dtype)
    return float((harmonics * numbers).sum(-1).mean()) / BRIGHTNESS_CENTROID


def attack_noise(noise: torch.Tensor) -> float:
    """noise: (frames, n_bands) linear magnitudes of the note -> mean dB over bands and the first 10 frames."""
    return float(to_db(noise[:ATTACK_FRAMES]).mean()) / 40.0 + ATTACK_NOISE_OFFSET


def extract_controls(params: SynthParams, notes: Sequence[Note], clip: bool = True, first: int = 0,
                     voice_frames: int | None = None) -> torch.Tensor:
    """Pool the six controls per note from one voice's frames.

    params: SynthParams of the voice, frame 0 at time 0 (or its frames [first, ...) of voice_frames, holding the
    notes' measured frames); notes: that voice's notes -> (n_notes, 6) float32, columns in CONTROL_NAMES order,
    clipped to [0, 1] unless `clip` is False.
    """
    rows = []
    for note in notes:
        start, stop = (f - first for f in note_frames(note, voice_frames or params.n_frames))
        amp_db = to_db(params.amplitude[start:stop])
        rows.append([
            volume(amp_db),
            volume_fluctuation(amp_db),
            volume_peak_position(amp_db),
            vibrato(params.f0[start:stop], note.pitch),
            brightness(params.harmonics[start:stop]),
            attack_noise(params.noise[start:stop]),
        ])
    controls = torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(CONTROL_NAMES))
    return controls.clamp(0.0, 1.0) if clip else controls
