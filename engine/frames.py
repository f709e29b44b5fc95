"""One voice's synthesis parameters a chunk of frames at a time, so that a render never holds a voice's parameters
whole (they grow with the clip: 165 kB per second of a 100-harmonic voice).

Chunks lie on a grid fixed by the notes' timing alone (not their controls or curves): about CHUNK_FRAMES frames
each, every boundary moved out of any note's measured frames (engine.expression.note_frames), so each note is
measured in one chunk. A chunk is made by the preset's generator for that window of frames (`generate_window`:
the network on its fixed blocks, the projection on the whole notes that reach the window, engine.model), then the
notes' curves. Every render path makes a voice's parameters on this grid (`VoiceFrames.whole` joins the chunks),
so the whole-array render, the streamed render and an incremental re-render, which regenerates the chunks an edit
reaches, all get the same floats. A generator without `generate_window` makes the whole voice as one chunk.

`RollingFrames` serves a render that goes forward in time: the window of frames each block of samples needs
(engine.dsp.frames_needed), with the fundamental's phase at its first frame carried exactly from the frames it
dropped (engine.core.frame_phase_steps), and the sounding controls of each note as its chunk goes by.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .core import frame_phase_steps
from .curves import apply_curves
from .dsp import frames_needed
from .expression import extract_controls
from .notes import Note
from .params import FRAME_RATE, PARAM_TENSORS, SynthParams, frames_for
from .presets import Preset
from .synthesis import VoiceNotes

CHUNK_FRAMES = 2048  # about 8 s of a voice's parameters at a time


def voice_frame_count(notes: Sequence[Note], sample_rate: int, n_samples: int) -> int:
    """Frames of a voice's parameters in a render n_samples long: its length or its last offset, whichever is later."""
    return frames_for(max(n_samples / sample_rate, max((n.offset for n in notes), default=0.0)))


def chunk_bounds(voice: VoiceNotes, size: int | None = None) -> list[int]:
    """Frame boundaries [0, ..., n_frames] of the voice's chunks: about `size` (default CHUNK_FRAMES) apart, none
    inside a note's measured frames (a boundary there moves to the note's last measured frame + 1)."""
    size = size or CHUNK_FRAMES
    bounds, starts = [0], voice.measured[:, 0]
    while bounds[-1] < voice.n_frames:
        target = bounds[-1] + size
        i = int(np.searchsorted(starts, target, side="right")) - 1
        if i >= 0 and voice.measured[i, 0] < target < voice.measured[i, 1]:
            target = int(voice.measured[i, 1])
        bounds.append(min(target, voice.n_frames))
    return bounds


class VoiceFrames:
    """The parameters of one voice (notes, their controls (n, 6), a preset, n_frames) chunk by chunk."""

    def __init__(self, notes: Sequence[Note], preset: Preset, controls: torch.Tensor, n_frames: int):
        self.voice = VoiceNotes(notes, n_frames)
        self.generator, self.controls = preset.synthesis, controls
        self.windowed = hasattr(self.generator, "generate_window")
        self.bounds = chunk_bounds(self.voice) if self.windowed else [0, n_frames]
        self.blocks: dict = {}  # the generator's work kept between consecutive chunks (network blocks)

    @property
    def n_frames(self) -> int:
        return self.voice.n_frames

    @property
    def notes(self) -> list[Note]:
        return self.voice.notes

    @property
    def reach(self) -> int:
        """Frames beyond a note's own that its parameters depend on (the generator's `reach`; the whole voice when
        the generator does not say)."""
        return getattr(self.generator, "reach", self.n_frames) if self.windowed else self.n_frames

    def chunk(self, index: int) -> SynthParams:
        """The parameters of chunk `index`: frames bounds[index] .. bounds[index + 1]."""
        lo, hi = self.bounds[index], self.bounds[index + 1]
        with torch.no_grad():
            if not self.windowed:
                return apply_curves(self.generator.generate(self.notes, self.controls, self.n_frames), self.notes)
            params = self.generator.generate_window(self.voice, self.controls, lo, hi, self.blocks)
            i0, i1 = self.voice.reaching(lo, hi)
            return apply_curves(params, self.notes[i0:i1], lo, self.n_frames)

    def chunks_between(self, start: int, stop: int) -> range:
        """Indices of the chunks that hold frames [start, stop)."""
        first = int(np.searchsorted(self.bounds, start, side="right")) - 1
        last = int(np.searchsorted(self.bounds, stop, side="left"))
        return range(max(first, 0), min(max(last, first + 1), len(self.bounds) - 1))

    def frames(self, start: int, stop: int) -> SynthParams:
        """Frames [start, stop) (plain SynthParams), from the chunks that hold them."""
        chunks = self.chunks_between(start, stop)
        params = join([self.chunk(i) for i in chunks])
        offset = self.bounds[chunks.start]
        return params.frames(start - offset, stop - offset)

    def whole(self) -> SynthParams:
        return self.frames(0, self.n_frames)

    def measured_in(self, index: int) -> range:
        """Indices of the notes measured in chunk `index` (those whose measured frames start there)."""
        starts = self.voice.measured[:, 0]
        return range(int(np.searchsorted(starts, self.bounds[index], side="left")),
                     int(np.searchsorted(starts, self.bounds[index + 1], side="left")))


def join(parts: Sequence[SynthParams]) -> SynthParams:
    """Consecutive frames of one voice as one SynthParams."""
    if len(parts) == 1:
        return parts[0]
    return SynthParams(*(torch.cat([getattr(p, name) for p in parts]) for name in PARAM_TENSORS), parts[0].max_hz)


class RollingFrames:
    """A voice's parameters for a render that goes forward in time, a few chunks at a time (module docstring)."""

    def __init__(self, frames: VoiceFrames, sample_rate: int):
        self.frames, self.sample_rate = frames, sample_rate
        self.held: SynthParams | None = None  # frames [self.first, self.first + held.n_frames)
        self.first, self.phase, self.next_chunk = 0, 0, 0
        self.sounding: dict[str, tuple[float, ...]] = {}  # note id -> the controls measured from what sounds
        self.on_chunk = None  # called with (first frame, chunk params) as each chunk is made (the service's store)

    def window(self, start: int, stop: int) -> SynthParams:
        """The window of frames that samples [start, stop) need, with the phase at its first frame (engine.dsp).
        Calls go forward: frames before the window are dropped."""
        lo, hi = frames_needed(self.sample_rate, start, stop, self.frames.n_frames)
        while self.first + (self.held.n_frames if self.held is not None else 0) < hi:
            self._add(self.next_chunk)
            self.next_chunk += 1
        if lo < self.first:
            raise ValueError(f"frames {lo}.. were already dropped (the render went back in time)")
        if lo > self.first:
            held = self.held
            self.phase = int(frame_phase_steps(held.f0[:lo - self.first + 1], FRAME_RATE,
                                               held.amplitude[:lo - self.first + 1], self.phase)[-1])
            self.held, self.first = held.frames(lo - self.first, held.n_frames), lo
        return self.held.window(self.first, self.frames.n_frames, self.phase)

    def _add(self, index: int) -> None:
        chunk = self.frames.chunk(index)
        lo = self.frames.bounds[index]
        measured = self.frames.measured_in(index)
        if measured:
            notes = self.frames.notes[measured.start:measured.stop]
            rows = extract_controls(chunk, notes, first=lo, voice_frames=self.frames.n_frames).tolist()
            self.sounding.update({n.id: tuple(round(float(v), 6) for v in row) for n, row in zip(notes, rows)})
        if self.on_chunk is not None:
            self.on_chunk(lo, chunk)
        self.held = chunk if self.held is None else join([self.held, chunk])
