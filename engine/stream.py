"""Streamed render: a mix made, limited and written block by block, so that its memory does not grow with the
clip's length (engine.render.render_clips holds whole-clip arrays; this gives the same samples).

1. `prepare`: the voices' controls, and for each a source of its synthesis parameters chunk by chunk
   (engine.frames.RollingFrames).
2. `Rendering.blocks`: for each block of REVERB_BLOCK samples (a grid from sample 0), every voice's dry samples
   (engine.dsp.synthesize of that range from the window of parameters it needs, made as the render reaches it,
   times engine.render.note_gate of that window), voices side by side, summed per preset in voice order, through each preset's reverb stream (engine.dsp.ReverbStream: overlap-add by block), summed in preset
   order: exactly the arithmetic of render_clips, so the same floats.
3. `render_to_file`: the blocks go to a `SampleFile` (float32 on disk, a nameless file beside the output)
   while their peak is measured; then the file is read back in blocks, through the look-ahead limiter
   (engine.render.Limited) when the peak needs it, into the output file (engine.render.AudioWriter: a temporary
   file, renamed when complete). Stems go straight to their files, block by block.

What stays in memory: per voice, a few chunks of synthesis parameters (engine.frames: ~8 s each) and the work
of making one; a few blocks of samples. Nothing grows with the clip's length (the notes and their controls aside).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .dsp import REVERB_BLOCK, synthesize, thread_pool
from .notes import Clip, Note
from .params import SynthParams
from .presets import Preset
from .frames import RollingFrames, VoiceFrames, voice_frame_count
from .render import AudioWriter, Limited, limiter_warning, note_gate, render_threads, voice_jobs


def return_freed_arrays(threshold: int = 256 * 1024) -> None:
    """Have glibc's malloc put allocations of `threshold` bytes or more in their own mappings, given back to the
    system when freed. By default the threshold rises with each large free (up to 32 MB), so a render's freed
    parameter arrays stay in the heaps of the threads that made them: a 2-minute four-voice render peaked at
    853 MB, 609 MB with this (bench/render_memory.py). Process-wide: the CLI and the service call it once. No-op
    without glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class SampleFile:
    """float32 samples on disk, read and written by slice like a 1-D array (`f[a:b]`, `f[a:b] = x`). Plain reads
    and writes, not a memory map (mapped pages would count as the process's memory). The file has no name: it is
    removed from its folder as soon as it is made, so it disappears with its last reference or its process, even a
    killed one. A new file reads as zeros."""

    def __init__(self, folder: str | Path, n_samples: int):
        self.fd, name = tempfile.mkstemp(prefix=".ddsp-samples-", suffix=".f32", dir=folder)
        os.unlink(name)
        os.ftruncate(self.fd, 4 * n_samples)
        self.folder, self.shape = Path(folder), (n_samples,)

    @property
    def nbytes(self) -> int:
        return 4 * self.shape[0]

    def _range(self, key: slice) -> tuple[int, int]:
        start, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise IndexError("a SampleFile reads and writes contiguous ranges only")
        return start, max(start, stop)

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop = self._range(key)
        data = os.pread(self.fd, 4 * (stop - start), 4 * start)
        return np.frombuffer(data, dtype="<f4").astype(np.float32)

    def __setitem__(self, key: slice, values) -> None:
        start, stop = self._range(key)
        data = np.broadcast_to(np.asarray(values, dtype="<f4"), (stop - start,)).tobytes()
        os.pwrite(self.fd, data, 4 * start)

    def copy(self) -> "SampleFile":
        """A new SampleFile in the same folder with the same samples (copied a block at a time)."""
        other = SampleFile(self.folder, self.shape[0])
        for lo in range(0, self.shape[0], REVERB_BLOCK):
            other[lo:lo + REVERB_BLOCK] = self[lo:lo + REVERB_BLOCK]
        return other

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):
        self.close()


class ParamFile:
    """One voice's synthesis parameters on disk, read and written by frame range (`read(a, b)`, `write(a, params)`):
    f0, amplitude, harmonics and noise one after the other in one nameless SampleFile (float32). What the service's
    cache keeps of a voice, so that its memory does not grow with the clip."""

    def __init__(self, folder: str | Path, n_frames: int, n_harmonics: int, n_bands: int, max_hz: float):
        self.n_frames, self.max_hz = n_frames, max_hz
        self.widths = {"f0": 1, "amplitude": 1, "harmonics": n_harmonics, "noise": n_bands}
        self.offsets, offset = {}, 0
        for name, width in self.widths.items():
            self.offsets[name], offset = offset, offset + n_frames * width
        self.file = SampleFile(folder, offset)

    @classmethod
    def like(cls, folder: str | Path, n_frames: int, params: SynthParams) -> "ParamFile":
        """An empty ParamFile of n_frames shaped like `params`."""
        return cls(folder, n_frames, params.harmonics.shape[1], params.noise.shape[1], params.max_hz)

    @property
    def nbytes(self) -> int:
        return self.file.nbytes

    def field(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Frames [start, stop) of one of the four tensors."""
        width, offset = self.widths[name], self.offsets[name]
        values = torch.from_numpy(self.file[offset + start * width:offset + stop * width])
        return values if width == 1 else values.reshape(-1, width)

    def read(self, start: int, stop: int) -> SynthParams:
        return SynthParams(*(self.field(name, start, stop) for name in self.widths), self.max_hz)

    def write(self, start: int, params: SynthParams) -> None:
        for name, width in self.widths.items():
            offset = self.offsets[name] + start * width
            values = getattr(params, name).reshape(-1).numpy()
            self.file[offset:offset + values.shape[0]] = values

    def close(self) -> None:
        self.file.close()


@dataclass
class StreamVoice:
    notes: list[Note]
    controls: torch.Tensor  # (n_notes, 6)
    frames: RollingFrames  # its synthesis parameters, made as the render goes
    seed: int
    preset: Preset


@dataclass
class Rendering:
    """Clips prepared for a streamed render: each voice's controls and parameters; the audio comes from `blocks`."""
    sample_rate: int
    n_samples: int
    voices: list[StreamVoice]
    controls: dict[str, tuple[float, ...]] = field(default_factory=dict)  # note id -> six controls used

    def blocks(self, stems: bool = False, threads: int | None = None,
               progress: Callable[[int, int], None] | None = None
               ) -> Iterator[tuple[int, np.ndarray, list[np.ndarray] | None]]:
        """(first sample, mix block before the limiter, each voice's stem block or None), REVERB_BLOCK samples at a
        time (the last one shorter)."""
        threads = render_threads() if threads is None else threads
        presets = {id(v.preset): v.preset for v in self.voices}
        reverbs = {key: preset.reverb.stream(self.sample_rate) for key, preset in presets.items()}
        stem_reverbs = [v.preset.reverb.stream(self.sample_rate) for v in self.voices] if stems else None
        n_blocks = -(-self.n_samples // REVERB_BLOCK)
        pool = thread_pool(min(threads, max(1, len(self.voices))))
        try:
            for index, lo in enumerate(range(0, self.n_samples, REVERB_BLOCK)):
                hi = min(lo + REVERB_BLOCK, self.n_samples)
                each = threads if len(self.voices) == 1 else 1
                dry = list(pool.map(lambda voice: self.dry(voice, lo, hi, each), self.voices))
                sums = {key: np.zeros(hi - lo, dtype=np.float32) for key in presets}
                for voice, samples in zip(self.voices, dry):
                    sums[id(voice.preset)] += samples
                mix = np.zeros(hi - lo, dtype=np.float32)
                for key, reverb in reverbs.items():
                    mix += reverb.push(sums[key])
                yield lo, mix, [r.push(d) for r, d in zip(stem_reverbs, dry)] if stems else None
                if progress:
                    progress(index + 1, n_blocks)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def sounding(self) -> dict[str, tuple[float, ...]]:
        """Note id -> the six controls measured from the parameters rendered (engine.curves.sounding_controls);
        complete once the blocks are done."""
        return {key: value for voice in self.voices for key, value in voice.frames.sounding.items()}

    def dry(self, voice: StreamVoice, start: int, stop: int, threads: int = 1) -> np.ndarray:
        """Samples [start, stop) of a voice without reverb (engine.render.render_voice's, exactly). Calls for a
        voice go forward in time."""
        params = voice.frames.window(start, stop)
        samples = synthesize(params, self.sample_rate, stop - start, seed=voice.seed, start=start,
                             threads=threads).numpy()
        samples *= note_gate(voice.notes, self.n_samples, self.sample_rate, (start, stop))
        return samples


def prepare(parts: Sequence[tuple[Clip, Preset]], sample_rate: int, seed: int = 0, duration: float | None = None,
            progress: Callable[[int, int], None] | None = None) -> Rendering:
    """Every voice's controls and parameter source, as engine.render.render_clips makes them (same seeds, same
    checks); the parameters themselves are made as `Rendering.blocks` reaches them."""
    n_samples, jobs = voice_jobs(parts, sample_rate, seed, duration)
    rendering = Rendering(sample_rate, n_samples, [])
    for done, (preset, notes, controls, voice_seed) in enumerate(jobs, 1):
        frames = VoiceFrames(notes, preset, controls, voice_frame_count(notes, sample_rate, n_samples))
        rendering.voices.append(StreamVoice(list(notes), controls, RollingFrames(frames, sample_rate), voice_seed,
                                            preset))
        rendering.controls.update({n.id: tuple(float(x) for x in c) for n, c in zip(notes, controls)})
        if progress:
            progress(done, len(jobs))
    return rendering


@dataclass
class StreamResult:
    sample_rate: int
    n_samples: int
    controls: dict[str, tuple[float, ...]]
    n_voices: int
    peak: float  # of the written audio (after the limiter)
    warnings: list[str] = field(default_factory=list)
    sounding: dict[str, tuple[float, ...]] = field(default_factory=dict)  # note id -> controls measured from what sounds

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate


def voice_steps(progress: Callable[[float, int], None] | None,
                n_voices: int) -> Callable[[int, int], None] | None:
    """A blocks-done progress callback that reports in steps of n_voices + 1, as render_clips counts."""
    if progress is None:
        return None
    return lambda done, total: progress((n_voices + 1) * done / total, n_voices + 1)


def render_mix(rendering: Rendering, mix: SampleFile, stem_writers: Sequence[AudioWriter] | None = None,
               threads: int | None = None, progress: Callable[[int, int], None] | None = None) -> None:
    """Write the rendering's mix (before the limiter) into `mix` and each voice's stem into its writer."""
    for lo, block, stems in rendering.blocks(stem_writers is not None, threads, progress):
        mix[lo:lo + block.shape[0]] = block
        for writer, stem in zip(stem_writers or (), stems or ()):
            writer.write(stem)


def write_limited(mix: SampleFile, writer: AudioWriter, sample_rate: int) -> str | None:
    """Write `mix` into `writer`, through the limiter when it needs it; -> the limiter's warning, or None."""
    warning = limiter_warning(mix)
    source = Limited(mix, sample_rate) if warning else mix
    for lo in range(0, mix.shape[0], REVERB_BLOCK):
        writer.write(source[lo:lo + REVERB_BLOCK])
    return warning


def render_to_file(parts: Sequence[tuple[Clip, Preset]], path: str | Path, sample_rate: int, bits: str = "24",
                   seed: int = 0, duration: float | None = None, stem_paths: Sequence[str | Path] | None = None,
                   threads: int | None = None, progress: Callable[[int, int], None] | None = None) -> StreamResult:
    """Render clips into the audio file `path` (and one file per voice in `stem_paths`, in voice order), block by
    block: the same samples as engine.render.render_clips + write_audio, in memory that does not grow with the
    length. Every file is written atomically; on an error none of them is left half-written."""
    output = AudioWriter(path, sample_rate, bits)  # a bad name or bit depth fails here, before any work
    writers = [AudioWriter(p, sample_rate, bits) for p in stem_paths] if stem_paths is not None else None
    rendering = prepare(parts, sample_rate, seed, duration)
    if writers is not None and len(writers) != len(rendering.voices):
        raise ValueError(f"{len(writers)} stem paths for {len(rendering.voices)} voices")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    mix = SampleFile(Path(path).parent, rendering.n_samples)
    try:
        with ExitStack() as stack:
            for writer in writers or ():
                stack.enter_context(writer)
            render_mix(rendering, mix, writers, threads, voice_steps(progress, len(rendering.voices)))
        with output:
            warning = write_limited(mix, output, sample_rate)
    finally:
        mix.close()
    return StreamResult(sample_rate, rendering.n_samples, rendering.controls, len(rendering.voices), output.peak,
                        [warning] if warning else [], rendering.sounding())

