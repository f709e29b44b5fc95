"""Incremental re-render: when only some notes' controls or curves change, re-make only the samples they change.

`RenderCache` keeps, per clip id, the last render's notes, each voice's controls and synthesis parameters, and the
mix (not the dry voices: the old dry samples of a range are re-made from the old parameters). A new request with the
same preset, rate, seed, length and notes (ids, pitches, times, velocities) is rendered incrementally:

1. per voice, resolve the controls; voices whose controls and note curves did not change are left alone (the key
   ignores controls and curves);
2. regenerate the parameters of a changed voice: the chunks of its frames (engine.frames) that the changed notes
   reach, with the generator's `reach` of context each side (the whole voice for a generator that does not say):
   the chunk grid and each chunk's arithmetic are the full render's, so frames the change does not reach come out
   the same floats; compare with the cached parameters to find the changed frames;
3. extend them to the samples they reach: frame interpolation and the harmonic audibility mask (+-2 frames), the
   noise STFT grains (+- n_fft samples) and the oscillator phase, which an f0 change moves up to the next silence
   (engine.core.frame_phases restarts the phase there);
4. synthesise that range of the voice with the old and the new parameters (`engine.dsp.synthesize` makes any range
   exactly as the whole does), multiply by the note gate, and add the reverberated difference to the cached mix
   (reverb is linear, so its tail is carried by convolving the difference);
5. when the mix needs the limiter (engine.render.limit), re-limit the changed samples and engine.render.limit_reach
   samples each side: the limiter's gain depends only on the mix that close, computed exactly, so the rest of the
   limited mix stays as it was. The cache keeps the mix before the limiter and, once one was needed, after it.

The result equals a full render to float32 rounding (tests/test_incremental.py: max abs difference < 1e-5).

Where the mix and the parameters live: given a `folder`, `RenderCache` renders in full with engine.stream (block by
block, parameters chunk by chunk) and keeps each clip's mix (and limited mix) in nameless engine.stream.SampleFile's
there and each voice's parameters in an engine.stream.ParamFile, on disk, read and written by range: the memory a
clip holds is its notes and controls, whatever its length, and a re-render reads the frames it changes (and the
f0 and amplitude before them, for the phase). Without a folder the mixes and parameters are in memory
(engine.render.render_clip).
"""
from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import core
from .dsp import frames_needed, synthesize
from .frames import VoiceFrames, join
from .notes import Clip, Note
from .params import FRAME_RATE, PARAM_TENSORS, SynthParams
from .presets import Preset
from .render import BLOCK_SAMPLES, Limited, limit_range, limit_reach, limiter_warning, note_gate, render_clip, resolve_voices
from .stream import ParamFile, SampleFile, prepare, render_mix, voice_steps

log = logging.getLogger("engine.render")


class Cancelled(Exception):
    """Raised inside a render when its job was cancelled or superseded."""


class MemoryParams:
    """A voice's whole SynthParams read and written by frame range like engine.stream.ParamFile."""

    def __init__(self, params: SynthParams):
        self.params, self.n_frames, self.max_hz = params, params.n_frames, params.max_hz

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.params.f0, self.params.amplitude,
                                                           self.params.harmonics, self.params.noise))

    def field(self, name: str, start: int, stop: int) -> torch.Tensor:
        return getattr(self.params, name)[start:stop].clone()

    def read(self, start: int, stop: int) -> SynthParams:
        return SynthParams(*(self.field(name, start, stop) for name in PARAM_TENSORS), self.max_hz)

    def write(self, start: int, params: SynthParams) -> None:
        for name in PARAM_TENSORS:
            getattr(self.params, name)[start:start + params.n_frames] = getattr(params, name)

    def close(self) -> None:
        pass


@dataclass
class VoiceState:
    notes: list[Note]
    controls: torch.Tensor  # (n_notes, 6)
    params: MemoryParams | ParamFile  # the voice's parameters, read and written by frame range
    seed: int


@dataclass
class CachedRender:
    key: tuple  # (preset path, sample rate, seed, n_samples, notes without controls)
    voices: list[VoiceState]
    mix: np.ndarray | SampleFile  # (n_samples,) float32, with reverb, before the limiter
    controls: dict[str, tuple[float, ...]]
    limited: np.ndarray | SampleFile | None = None  # the mix after the limiter, once a render of the clip needed it

    @property
    def audio(self) -> np.ndarray | SampleFile:
        return self.mix if self.limited is None else self.limited

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (parameters and mixes, unless they are on disk)."""
        params = sum(v.params.nbytes for v in self.voices if isinstance(v.params, MemoryParams))
        return params + sum(a.nbytes for a in (self.mix, self.limited) if isinstance(a, np.ndarray))

    @property
    def disk_bytes(self) -> int:
        params = sum(v.params.nbytes for v in self.voices if isinstance(v.params, ParamFile))
        return params + sum(a.nbytes for a in (self.mix, self.limited) if isinstance(a, SampleFile))


@dataclass
class Rendered:
    audio: np.ndarray | SampleFile  # (n_samples,) float32; owned by the cache: valid until the clip's next render
    sample_rate: int
    controls: dict[str, tuple[float, ...]]  # note id -> six controls used
    rerendered: list[str]  # ids of the notes whose audio was (re)made
    mode: str  # "full" or "incremental"
    changed: tuple[int, int] | None = None  # incremental: the samples [start, stop) that differ from the last render
    warnings: list[str] = field(default_factory=list)  # e.g. that the limiter worked

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def voice_seed(seed: int, voice_index: int) -> int:
    """The noise seed engine.render.render_clips gives voice `voice_index` of a single clip."""
    return seed * 1009 + voice_index


def render_key(clip: Clip, preset: Preset, sample_rate: int, seed: int, n_samples: int) -> tuple:
    notes = tuple((n.id, n.pitch, n.onset, n.offset, n.velocity) for n in clip.notes)
    return (str(preset.path or preset.name), sample_rate, seed, n_samples, notes)


def n_samples_for(clip: Clip, preset: Preset, sample_rate: int, length: float | None) -> int:
    duration = clip.end + preset.reverb.tail_seconds if not length else length
    return int(round(duration * sample_rate))


def render_full(clip: Clip, preset: Preset, sample_rate: int, seed: int, length: float | None,
                progress: Callable[[int, int], None] | None = None,
                folder: Path | None = None) -> tuple[Rendered, CachedRender]:
    """A full render (engine.render.render_clip; streamed into files in `folder` when given) and the state an
    incremental re-render needs."""
    if folder is not None:
        return _render_full_on_disk(clip, preset, sample_rate, seed, length, progress, folder)
    result = render_clip(clip, preset, sample_rate, seed=seed, duration=length or None, progress=progress)
    voices = [VoiceState(v.notes, v.controls, MemoryParams(v.params), voice_seed(seed, i))
              for i, v in enumerate(result.voices)]
    mix, limited = (result.audio, None) if result.unlimited is None else (result.unlimited, result.audio)
    cached = CachedRender(render_key(clip, preset, sample_rate, seed, result.audio.shape[0]), voices, mix,
                          dict(result.controls), limited)
    return Rendered(cached.audio, sample_rate, cached.controls, [n.id for n in clip.notes], "full",
                    warnings=list(result.warnings)), cached


def _render_full_on_disk(clip: Clip, preset: Preset, sample_rate: int, seed: int, length: float | None,
                         progress: Callable[[int, int], None] | None, folder: Path) -> tuple[Rendered, CachedRender]:
    """render_full, the mix streamed block by block (engine.stream) into SampleFiles in `folder`: the same
    samples as render_clip."""
    folder.mkdir(parents=True, exist_ok=True)
    rendering = prepare([(clip, preset)], sample_rate, seed, length or None)
    n_voices = len(rendering.voices)
    stores: list[ParamFile | None] = [None] * n_voices
    for index, voice in enumerate(rendering.voices):
        voice.frames.on_chunk = lambda first, chunk, index=index, voice=voice: _store_chunk(
            stores, index, folder, voice.frames.frames.n_frames, first, chunk)
    mix = SampleFile(folder, rendering.n_samples)
    render_mix(rendering, mix, progress=voice_steps(progress, n_voices))
    warning = limiter_warning(mix)
    limited = None
    if warning:
        limited, source = SampleFile(folder, rendering.n_samples), Limited(mix, sample_rate)
        for lo in range(0, rendering.n_samples, BLOCK_SAMPLES):
            limited[lo:lo + BLOCK_SAMPLES] = source[lo:lo + BLOCK_SAMPLES]
        log.warning("%s", warning)
    voices = [VoiceState(v.notes, v.controls, store, voice_seed(seed, i))
              for i, (v, store) in enumerate(zip(rendering.voices, stores))]
    cached = CachedRender(render_key(clip, preset, sample_rate, seed, rendering.n_samples), voices, mix,
                          dict(rendering.controls), limited)
    return Rendered(cached.audio, sample_rate, cached.controls, [n.id for n in clip.notes], "full",
                    warnings=[warning] if warning else []), cached


def _store_chunk(stores: list, index: int, folder: Path, n_frames: int, first: int, chunk: SynthParams) -> None:
    """Write a voice's chunk of parameters into its ParamFile (made with the first chunk)."""
    if stores[index] is None:
        stores[index] = ParamFile.like(folder, n_frames, chunk)
    stores[index].write(first, chunk)


def render_incremental(cached: CachedRender, clip: Clip, preset: Preset, sample_rate: int) -> Rendered:
    """Update `cached` in place to the render of `clip` (same key) and return it. On an exception the cache entry
    must be dropped: it may be half-updated."""
    voices = clip.voices()
    if [[n.id for n in v] for v in voices] != [[n.id for n in v.notes] for v in cached.voices]:
        raise ValueError("voices differ from the cached render")  # cannot happen for the same notes
    n_samples = cached.mix.shape[0]
    rerendered: list[str] = []
    changed_from, changed_to = n_samples, 0
    for notes, state, controls in zip(voices, cached.voices, resolve_voices(voices, preset)):
        changed = [i for i, moved in enumerate((controls != state.controls).any(1).tolist())
                   if moved or notes[i].curves != state.notes[i].curves]
        if not changed:
            continue
        patch = regenerate(preset, state, controls, changed, notes)
        start, stop = _changed_samples(state.params, patch, sample_rate, n_samples)
        state.controls, state.notes = controls, list(notes)
        cached.controls.update({notes[i].id: tuple(controls[i].tolist()) for i in changed})
        if start >= stop:
            state.params.write(patch.start, patch.params)
            continue
        gate = _gate(state.notes, start, stop, sample_rate)
        window = _window(state.params, sample_rate, start, stop)
        old = synthesize(window, sample_rate, stop - start, seed=state.seed, start=start).numpy()
        _apply(window, patch)
        new = synthesize(window, sample_rate, stop - start, seed=state.seed, start=start).numpy()
        state.params.write(patch.start, patch.params)
        wet = preset.reverb.get_signal((new - old) * gate, sample_rate)[:n_samples - start]
        cached.mix[start:start + wet.shape[0]] += wet
        changed_from, changed_to = min(changed_from, start), max(changed_to, start + wet.shape[0])
        t0, t1 = start / sample_rate, stop / sample_rate
        rerendered.extend(n.id for n in state.notes if n.onset < t1 and n.offset > t0)
    warnings = []
    if changed_to > changed_from:
        changed_from, changed_to = _relimit(cached, changed_from, changed_to, sample_rate)
    if cached.limited is not None:
        warning = limiter_warning(cached.mix)
        warnings = [warning] if warning else []
    return Rendered(cached.audio, sample_rate, cached.controls, rerendered, "incremental",
                    (changed_from, changed_to) if changed_to > changed_from else (0, 0), warnings)


def _relimit(cached: CachedRender, start: int, stop: int, sample_rate: int) -> tuple[int, int]:
    """The mix changed in samples [start, stop): bring the limited mix up to date (the first time the clip needs
    the limiter, start it as a copy of the mix: until then nothing needed it). Returns the samples of the audio
    that may have changed."""
    if cached.limited is None:
        if limiter_warning(cached.mix[start:stop]) is None:
            return start, stop  # nothing else exceeds the ceiling either: no limiter
        cached.limited = cached.mix.copy()  # an array, or a SampleFile in the same folder
    reach = limit_reach(sample_rate)
    start, stop = max(0, start - reach), min(cached.mix.shape[0], stop + reach)
    limit_range(cached.mix, cached.limited, start, stop, sample_rate)
    return start, stop


@dataclass
class Patch:
    """New parameter values for frames [start, stop) of a voice."""
    start: int
    stop: int
    params: SynthParams  # stop - start frames


def regenerate(preset: Preset, state: VoiceState, controls: torch.Tensor, changed: list[int],
               new_notes: list[Note] | None = None) -> Patch:
    """New parameters of a voice whose notes `changed` got new controls or curves (`new_notes`: the notes with
    their new curves, default the cached ones), as a patch over the cached ones (curves applied): the chunks of
    engine.frames that hold the changed notes' frames and the generator's reach around them, made as the full
    render made them, compared with the cached frames."""
    n_frames = state.params.n_frames
    frames = VoiceFrames(state.notes if new_notes is None else new_notes, preset, controls, n_frames)
    voice, reach = frames.voice, frames.reach
    lo = min(int(voice.starts[i]) for i in changed) - reach
    hi = max(int(voice.stops[i]) for i in changed) + reach
    lo, hi = voice.cover(max(0, lo), min(n_frames, hi))
    chunks = frames.chunks_between(lo, hi)
    first, last = frames.bounds[chunks.start], frames.bounds[chunks.stop]
    new = join([frames.chunk(i) for i in chunks])
    span = _diff_span(state.params.read(first, last), new)
    if span is None:
        return Patch(first, first, new.frames(0, 0))
    return Patch(first + span[0], first + span[1], new.frames(*span))


def _diff_span(a: SynthParams, b: SynthParams) -> tuple[int, int] | None:
    """Frames [first, stop) where two equally long parameter sets differ, or None."""
    differs = (a.f0 != b.f0) | (a.amplitude != b.amplitude) | (a.harmonics != b.harmonics).any(1) | \
        (a.noise != b.noise).any(1)
    index = differs.nonzero().flatten()
    return None if index.numel() == 0 else (int(index[0]), int(index[-1]) + 1)


def _window(params: MemoryParams | ParamFile, sample_rate: int, start: int, stop: int) -> SynthParams:
    """The window of a voice's parameters that its samples [start, stop) need, with the phase at its first frame
    (from the f0 and amplitude before it): a copy, read from memory or disk."""
    lo, hi = frames_needed(sample_rate, start, stop, params.n_frames)
    phase = int(core.frame_phase_steps(params.field("f0", 0, lo + 1), FRAME_RATE,
                                       params.field("amplitude", 0, lo + 1))[-1])
    return params.read(lo, hi).window(lo, params.n_frames, phase)


def _apply(window: SynthParams, patch: Patch) -> None:
    """Put the patch's frames that fall in the window into it."""
    lo, hi = max(patch.start, window.first_frame), min(patch.stop, window.first_frame + window.n_frames)
    for name in PARAM_TENSORS:
        getattr(window, name)[lo - window.first_frame:hi - window.first_frame] = \
            getattr(patch.params, name)[lo - patch.start:hi - patch.start]


def _changed_samples(params: MemoryParams | ParamFile, patch: Patch, sample_rate: int,
                     n_samples: int) -> tuple[int, int]:
    """Samples [start, stop) of the voice that the patch changes (see the module docstring, step 3)."""
    if patch.stop <= patch.start:
        return 0, 0
    first, last = patch.start, patch.stop  # frames [first, last)
    f0_changed = not torch.equal(params.field("f0", first, last), patch.params.f0)
    amp_changed = not torch.equal(params.field("amplitude", first, last) == 0, patch.params.amplitude == 0)
    if f0_changed or amp_changed:  # the phase differs from `first` up to the next restart (two silent frames)
        last = _next_phase_restart(params, patch, last)
    per_frame = sample_rate / FRAME_RATE
    n_fft = core.noise_fft_size(sample_rate)
    start = math.floor((first - 2) * per_frame) - n_fft
    stop = math.ceil((last + 2) * per_frame) + n_fft
    return max(0, start), min(n_samples, stop)


def _next_phase_restart(params: MemoryParams | ParamFile, patch: Patch, after: int) -> int:
    """First frame >= `after` where the phase restarts in both old and new parameters (the frames from there on are
    the same in both), or the end of the voice."""
    first = max(after - 1, 0)
    silent = params.field("amplitude", first, params.n_frames) == 0
    lo, hi = max(patch.start, first), patch.stop
    if hi > lo:
        silent[lo - first:hi - first] &= patch.params.amplitude[lo - patch.start:] == 0
    restart = silent[:-1] & silent[1:]  # restart[k]: the phase restarts at frame first + k + 1
    index = restart.nonzero()
    return params.n_frames if index.numel() == 0 else first + int(index[0]) + 1


def _gate(notes: list[Note], start: int, stop: int, sample_rate: int) -> np.ndarray:
    """engine.render.note_gate over samples [start, stop), from the notes near that range only."""
    t0, t1 = start / sample_rate, stop / sample_rate
    inside = [i for i, n in enumerate(notes) if n.offset >= t0 - 0.01 and n.onset <= t1 + 0.01]
    if not inside:
        return np.zeros(stop - start, dtype=np.float32)
    near = notes[max(0, inside[0] - 1):inside[-1] + 2]
    return note_gate(near, stop, sample_rate)[start:stop]


class RenderCache:
    """Renders clips by id, incrementally when possible; keeps the last render of each clip id, least recently used
    first out beyond `max_bytes`. Thread-safe: renders of one clip id are serialised (`lock(clip_id)`)."""

    def __init__(self, max_bytes: int = 512 * 2 ** 20, incremental: bool = True, folder: Path | None = None,
                 max_disk_bytes: int = 8 * 2 ** 30):
        self.max_bytes = max_bytes  # in memory (parameters; mixes too when there is no folder)
        self.incremental = incremental
        self.folder = folder  # where mixes are kept on disk (see the module docstring), or None: in memory
        self.max_disk_bytes = max_disk_bytes
        self.entries: OrderedDict[str, CachedRender] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, clip_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(clip_id, threading.Lock())

    def render(self, clip_id: str, clip: Clip, preset: Preset, sample_rate: int, seed: int = 0,
               length: float | None = None, progress: Callable[[int, int], None] | None = None) -> Rendered:
        """Hold `lock(clip_id)` around this call and any use of the returned audio."""
        n_samples = n_samples_for(clip, preset, sample_rate, length)
        key = render_key(clip, preset, sample_rate, seed, n_samples)
        with self._guard:
            cached = self.entries.pop(clip_id, None)
        if self.incremental and cached is not None and cached.key == key:
            try:
                rendered = render_incremental(cached, clip, preset, sample_rate)
            except Cancelled:
                raise
            except Exception:
                cached = None  # half-updated: drop it and render in full
            else:
                self._store(clip_id, cached)
                return rendered
        cached = None  # the old entry's files go before the new render makes its own
        rendered, cached = render_full(clip, preset, sample_rate, seed, length, progress, self.folder)
        self._store(clip_id, cached)
        return rendered

    def _store(self, clip_id: str, cached: CachedRender) -> None:
        with self._guard:
            self.entries[clip_id] = cached
            total = sum(e.nbytes for e in self.entries.values())
            disk = sum(e.disk_bytes for e in self.entries.values())
            while (total > self.max_bytes or disk > self.max_disk_bytes) and len(self.entries) > 1:
                _, dropped = self.entries.popitem(last=False)  # its files close when it is no longer used
                total, disk = total - dropped.nbytes, disk - dropped.disk_bytes

    def forget(self, clip_id: str) -> None:
        with self._guard:
            self.entries.pop(clip_id, None)
