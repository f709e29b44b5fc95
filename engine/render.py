"""Notes -> controls -> synthesis parameters -> audio, per voice, mixed; audio files written atomically.

A note with onset t sounds from sample round(t * sample_rate): each voice is multiplied by a gate that opens there
(1 ms linear fade-in from its first sample) and closes at round(offset * sample_rate) (5 ms fade-out before it), so frame-rate parameters
never smear a note outside its bounds. Reverb is applied per preset to the sum of its voices.

Notes of a clip that start together (onsets within CHORD_SECONDS) and have no controls of their own get the same
controls: the mean of what the expression generator predicts for each (or of the chord's given controls, when some
of its notes have them). A DAW lane holds one value at a time, so one point per chord shows exactly what each of
its notes plays.

A mix that would exceed LIMIT_CEILING is brought under it by a look-ahead peak limiter (`limit`) instead of
clipping, with a warning: its gain at a sample depends only on the samples within LIMIT_REACH of it, computed
exactly, so any range of samples limits identically alone (the incremental render relies on it).
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from daw_bridge.files import atomic_file
from daw_bridge.protocol import check_sample_rate

from .dsp import synthesize, thread_pool
from .frames import VoiceFrames, voice_frame_count
from .notes import CONTROL_NAMES, Clip, Note, NoteError, note_to_data
from .params import SynthParams
from .presets import Preset
from .runner import default_jobs

log = logging.getLogger("engine.render")

FADE_IN_SECONDS = 0.001
FADE_OUT_SECONDS = 0.005
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}
CHORD_SECONDS = 0.001  # notes whose onsets lie this close to a chord's first onset belong to the chord

BLOCK_SAMPLES = 2 ** 18  # samples read, limited or written at a time by functions that take whole signals

LIMIT_CEILING_DB = -0.1  # sample peak the limiter keeps the mix under
LIMIT_CEILING = 10.0 ** (LIMIT_CEILING_DB / 20.0)
LIMIT_HOLD_SECONDS = 0.010  # the gain holds a peak's value this long before and after it (one half-period at 50 Hz)
LIMIT_RAMP_SECONDS = 0.020  # about this long to ramp the gain from 0 to 1 (a power of two in samples)
_GAIN_STEP = 2.0 ** -24  # gains lie on this grid: every sum the limiter makes is exact in float64


@dataclass
class VoiceRender:
    notes: list[Note]
    controls: torch.Tensor  # (n_notes, 6)
    params: SynthParams
    dry: np.ndarray  # (n_samples,)


@dataclass
class RenderResult:
    audio: np.ndarray  # (n_samples,) float32 mix, limited when it would exceed LIMIT_CEILING
    sample_rate: int
    controls: dict[str, tuple[float, ...]]  # note id -> six controls used
    voices: list[VoiceRender] = field(default_factory=list)
    stems: list[np.ndarray] | None = None  # per voice, with reverb, when asked for (never limited)
    unlimited: np.ndarray | None = None  # the mix before the limiter, when the limiter changed it
    warnings: list[str] = field(default_factory=list)  # e.g. that the limiter worked, and how hard

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def resolve_controls(notes: Sequence[Note], preset: Preset) -> torch.Tensor:
    """Controls per note (n, 6) of one voice on its own: the note's own where given, the preset's expression
    generator elsewhere. A clip's voices go through `resolve_voices`, which also evens out chords."""
    given = [n.controls for n in notes]
    if all(c is not None for c in given):
        return torch.tensor(given, dtype=torch.float32).reshape(len(notes), 6)
    generated = preset.expression.generate(notes).clamp(0.0, 1.0)
    for i, c in enumerate(given):
        if c is not None:
            generated[i] = torch.tensor(c)
    return generated


def resolve_voices(voices: Sequence[Sequence[Note]], preset: Preset) -> list[torch.Tensor]:
    """Controls per voice of one clip (`Clip.voices()`). Given controls are used as given; the others are
    generated per voice (`resolve_controls`), then evened out per chord (notes whose onsets lie within
    CHORD_SECONDS of the chord's first onset, across voices): a chord's notes without controls all get the mean of
    its given notes' controls if it has any (a note added to a chord joins it), else the mean of the generator's
    predictions for them. So one lane value per chord is what each of its notes plays. Deterministic."""
    controls = [resolve_controls(notes, preset) for notes in voices]
    by_onset = sorted((note.onset, note.controls is None, v, i) for v, notes in enumerate(voices)
                      for i, note in enumerate(notes))
    chord: list[tuple[bool, int, int]] = []
    first = -math.inf
    for onset, generated, v, i in by_onset + [(math.inf, False, -1, -1)]:
        if onset - first > CHORD_SECONDS + 1e-9:
            _even_out(chord, controls)
            chord, first = [], onset
        chord.append((generated, v, i))
    return controls


def _even_out(chord: list[tuple[bool, int, int]], controls: list[torch.Tensor]) -> None:
    """Give a chord's generated notes one set of controls (see resolve_voices)."""
    generated = [(v, i) for g, v, i in chord if g]
    if len(chord) < 2 or not generated:
        return
    source = [(v, i) for g, v, i in chord if not g] or generated
    mean = torch.stack([controls[v][i] for v, i in source]).double().mean(0).float()
    for v, i in generated:
        controls[v][i] = mean


def note_gate(notes: Sequence[Note], n_samples: int, sample_rate: int,
              window: tuple[int, int] | None = None) -> np.ndarray:
    """(n_samples,) 0..1: open over each note, exact to the sample at onsets; voice notes must not overlap.
    window (start, stop): only samples [start, stop) of that gate -> (stop - start,), the same values."""
    start, stop = window or (0, n_samples)
    gate = np.zeros(stop - start, dtype=np.float32)
    fade_in = max(1, int(round(FADE_IN_SECONDS * sample_rate)))
    fade_out = max(1, int(round(FADE_OUT_SECONDS * sample_rate)))

    def put(first: int, values: np.ndarray) -> None:  # gate[first:first + len(values)] in render samples
        lo, hi = max(first, start), min(first + values.shape[0], stop)
        if hi > lo:
            gate[lo - start:hi - start] = values[lo - first:hi - first]

    for i, note in enumerate(notes):
        on = int(round(note.onset * sample_rate))
        off = min(int(round(note.offset * sample_rate)), n_samples)
        if on >= off or off <= start or on >= stop:
            continue
        lo, hi = max(on, start), min(off, stop)
        if hi > lo:
            gate[lo - start:hi - start] = 1.0
        joined_before = i > 0 and int(round(notes[i - 1].offset * sample_rate)) >= on
        joined_after = i + 1 < len(notes) and int(round(notes[i + 1].onset * sample_rate)) <= off
        if not joined_before:
            n = min(fade_in, off - on)
            put(on, np.arange(1, n + 1, dtype=np.float32) / fade_in)
        if not joined_after:
            n = min(fade_out, off - on)
            ramp = np.arange(n, 0, -1, dtype=np.float32) / fade_out
            lo, hi = max(off - n, start), min(off, stop)
            if hi > lo:
                put(lo, np.minimum(gate[lo - start:hi - start], ramp[lo - (off - n):hi - (off - n)]))
    return gate


def render_threads() -> int:
    """Threads a render runs voices (or parts of one voice) on: $DDSP_RENDER_THREADS, else the CPUs this process
    may use. Each gets one torch thread: the voices are the parallel work."""
    configured = os.environ.get("DDSP_RENDER_THREADS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"DDSP_RENDER_THREADS={configured!r}: use a whole number of threads, 1 or more")
        return int(configured)
    return max(1, default_jobs())


def voice_params(notes: Sequence[Note], preset: Preset, sample_rate: int, n_samples: int,
                 controls: torch.Tensor) -> SynthParams:
    """The synthesis parameters of one voice of a render n_samples long, shaped by the notes' curves, whole: the
    chunks of engine.frames joined (the streamed render makes the same chunks one at a time)."""
    return VoiceFrames(notes, preset, controls, voice_frame_count(notes, sample_rate, n_samples)).whole()


def render_voice(notes: Sequence[Note], preset: Preset, sample_rate: int, n_samples: int, seed: int,
                 controls: torch.Tensor | None = None, threads: int = 1) -> VoiceRender:
    """One monophonic voice, dry (no reverb); `controls` (n, 6) default to `resolve_controls(notes, preset)`.
    threads > 1 synthesises parts of the voice side by side (the same samples: engine.dsp.synthesize)."""
    controls = resolve_controls(notes, preset) if controls is None else controls
    params = voice_params(notes, preset, sample_rate, n_samples, controls)
    dry = synthesize(params, sample_rate, n_samples, seed=seed, threads=threads).numpy()
    dry *= note_gate(notes, n_samples, sample_rate)
    return VoiceRender(list(notes), controls, params, dry)


def voice_jobs(parts: Sequence[tuple[Clip, Preset]], sample_rate: int, seed: int,
               duration: float | None) -> tuple[int, list[tuple[Preset, list[Note], torch.Tensor, int]]]:
    """Check a render's parts and length -> (n_samples, one (preset, notes, controls, seed) per voice, in mix
    order); both render paths (render_clips and engine.stream) start here. `duration` defaults to the last offset
    plus the reverb tail."""
    check_sample_rate(sample_rate)
    if not parts:
        raise NoteError("nothing to render: no clips")
    if duration is None:
        duration = max(clip.end + preset.reverb.tail_seconds for clip, preset in parts)
    if not (0 < duration <= 3600 + 60):
        raise NoteError(f"render length {duration!r} s is out of range")
    jobs = [(preset, notes, controls, seed * 1009 + clip_index * 101 + voice_index)
            for clip_index, (clip, preset) in enumerate(parts)
            for voice_index, (notes, controls) in enumerate(zip(clip.voices(), resolve_voices(clip.voices(), preset)))]
    return int(round(duration * sample_rate)), jobs


def render_clips(parts: Sequence[tuple[Clip, Preset]], sample_rate: int, seed: int = 0,
                 duration: float | None = None, stems: bool = False,
                 progress: Callable[[int, int], None] | None = None, threads: int | None = None) -> RenderResult:
    """Render clips, each with its preset, into one mix of `duration` seconds (default: last offset + reverb tail).

    The same parts, rate and seed give the same samples, whatever `threads` (default `render_threads()`): voices
    are rendered side by side, one torch thread each, and mixed in order. A mix over LIMIT_CEILING is limited
    (`limit`), with a warning in the result (and in the log).
    """
    n_samples, jobs = voice_jobs(parts, sample_rate, seed, duration)
    threads = render_threads() if threads is None else threads
    mix = np.zeros(n_samples, dtype=np.float32)
    result = RenderResult(mix, sample_rate, {}, [], [] if stems else None)
    dry_by_preset: dict[int, tuple[Preset, np.ndarray]] = {}  # reverb is linear: one convolution per preset

    def render_job(job) -> VoiceRender:
        preset, notes, controls, voice_seed = job
        return render_voice(notes, preset, sample_rate, n_samples, seed=voice_seed, controls=controls,
                            threads=threads if len(jobs) == 1 else 1)

    pool = thread_pool(max(1, min(threads, len(jobs))))
    try:  # a progress callback that raises (a cancelled job) drops the voices not yet started
        for done, (job, voice) in enumerate(zip(jobs, pool.map(render_job, jobs)), 1):
            preset, notes = job[0], job[1]
            dry_sum = dry_by_preset.setdefault(id(preset), (preset, np.zeros(n_samples, dtype=np.float32)))[1]
            dry_sum += voice.dry
            result.voices.append(voice)
            result.controls.update({n.id: tuple(float(x) for x in c) for n, c in zip(notes, voice.controls)})
            if stems:
                result.stems.append(preset.reverb.get_signal(voice.dry, sample_rate)[:n_samples])
            if progress:
                progress(done, len(jobs))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for preset, dry_sum in dry_by_preset.values():
        mix += preset.reverb.get_signal(dry_sum, sample_rate)[:n_samples]
    warning = limiter_warning(mix)
    if warning:
        result.unlimited, result.audio = mix, limit(mix, sample_rate)
        result.warnings.append(warning)
        log.warning("%s", warning)
    return result


# ------------------------------------------------------------------------------------------------ the limiter
def limit_hold(sample_rate: int) -> int:
    return int(round(LIMIT_HOLD_SECONDS * sample_rate))


def limit_ramp(sample_rate: int) -> int:
    """Samples the gain takes to rise from 0 to 1: the power of two nearest LIMIT_RAMP_SECONDS (so every step of
    the ramp, 1 / ramp, is exact)."""
    return 2 ** int(round(math.log2(LIMIT_RAMP_SECONDS * sample_rate)))


def limit_reach(sample_rate: int) -> int:
    """The limiter's gain at sample n depends on samples n - reach .. n + reach only."""
    return limit_hold(sample_rate) + limit_ramp(sample_rate)


def limiter_warning(audio: np.ndarray) -> str | None:
    """What to tell the user when `audio` needs the limiter (None when it does not). audio: (n,) array, or anything
    sliced like one (engine.stream.SampleFile): read in blocks."""
    peak, over = 0.0, 0
    for lo in range(0, audio.shape[0], BLOCK_SAMPLES):
        block = audio[lo:lo + BLOCK_SAMPLES]
        peak = max(peak, float(block.max(initial=0.0)), -float(block.min(initial=0.0)))
        over += int(np.count_nonzero(block > LIMIT_CEILING)) + int(np.count_nonzero(block < -LIMIT_CEILING))
    if peak <= LIMIT_CEILING:
        return None
    return (f"the mix peaks at {peak:.3f} ({20 * math.log10(peak):+.1f} dBFS): a limiter brought {over} samples "
            f"under {LIMIT_CEILING_DB:g} dBFS instead of clipping them (lower the volume controls for a clean mix)")


def limit(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """`audio` with its peaks brought under LIMIT_CEILING: a new array, or `audio` itself when nothing exceeds it."""
    if float(max(audio.max(initial=0.0), -audio.min(initial=0.0))) <= LIMIT_CEILING:
        return audio
    out = audio.copy()
    limit_range(audio, out, 0, audio.shape[0], sample_rate)
    return out


class Limited:
    """`audio` (anything sliced like a 1-D array) as `limit` would return it, computed slice by slice as it is read
    (`limit_range`), so a long mix is limited without holding it whole. Reads audio within limit_reach of a slice."""

    def __init__(self, audio, sample_rate: int):
        self.audio, self.sample_rate, self.shape = audio, sample_rate, audio.shape

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, _ = key.indices(self.shape[0])
        out = np.empty(max(0, stop - start), dtype=np.float32)
        limit_range(self.audio, _Shifted(out, start), start, stop, self.sample_rate)
        return out


class _Shifted:
    """Writes to positions [start, ...) of a signal land in `out` from 0 (limit_range writes by absolute position)."""

    def __init__(self, out: np.ndarray, start: int):
        self.out, self.start = out, start

    def __setitem__(self, key: slice, values: np.ndarray) -> None:
        self.out[key.start - self.start:key.stop - self.start] = values


def limit_range(audio: np.ndarray, out: np.ndarray, start: int, stop: int, sample_rate: int,
                block: int = BLOCK_SAMPLES) -> None:
    """Write samples [start, stop) of the limited `audio` into `out` (the same positions), reading `audio` within
    limit_reach() of them. The gain is the largest that keeps every sample under the ceiling, holds for
    LIMIT_HOLD_SECONDS around each peak and moves by at most 1 / limit_ramp() per sample:

        need[n] = min(1, ceiling / |x[n]|) rounded down to a multiple of 2^-24
        hold[n] = min of need over n - hold .. n + hold
        gain[n] = min over k of (hold[k] + |n - k| / ramp), at most 1

    Each step is exact (a minimum, or float64 sums of multiples of 2^-24 indexed by the absolute sample), so the
    result does not depend on which range is computed, and gain * x never exceeds the ceiling."""
    from scipy.ndimage import minimum_filter1d

    n_total = audio.shape[0]
    start, stop = max(0, start), min(n_total, stop)
    hold, ramp = limit_hold(sample_rate), limit_ramp(sample_rate)
    reach = hold + ramp
    step = 1.0 / ramp
    for lo in range(start, stop, block):
        hi = min(stop, lo + block)
        w0, w1 = max(0, lo - 2 * reach), min(n_total, hi + 2 * reach)
        x = audio[w0:w1]
        if float(max(x.max(initial=0.0), -x.min(initial=0.0))) <= LIMIT_CEILING:
            out[lo:hi] = audio[lo:hi]
            continue
        magnitude = np.abs(x.astype(np.float64))
        need = np.ones_like(magnitude)
        loud = magnitude > LIMIT_CEILING
        need[loud] = np.floor(LIMIT_CEILING / magnitude[loud] / _GAIN_STEP) * _GAIN_STEP
        held = minimum_filter1d(need, 2 * hold + 1, mode="constant", cval=1.0)
        position = np.arange(w0, w1, dtype=np.float64) * step
        rising = np.minimum.accumulate(held - position) + position  # min over k <= n of held[k] + (n - k) / ramp
        falling = np.minimum.accumulate((held + position)[::-1])[::-1] - position  # ... over k >= n
        gain = np.minimum(np.minimum(rising, falling), 1.0).astype(np.float32)
        out[lo:hi] = audio[lo:hi] * gain[lo - w0:hi - w0]


def render_clip(clip: Clip, preset: Preset, sample_rate: int, **kwargs) -> RenderResult:
    return render_clips([(clip, preset)], sample_rate, **kwargs)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, bits: str = "24") -> Path:
    """Write WAV or FLAC (by extension) atomically: a temporary file in the same folder, then rename.

    audio: (n,) float32, or anything sliced like it (engine.stream.SampleFile, `Limited`): written
    BLOCK_SAMPLES at a time. bits: "16", "24" or "float" (FLAC has no float). Samples beyond +-1 are clipped for
    integer formats, with a warning in the log (a render's mix never needs it: it is limited). Float WAVs carry no
    PEAK chunk (it holds a time stamp, and a patched file would keep a stale peak): the same audio gives the same
    bytes.
    """
    with AudioWriter(path, sample_rate, bits) as writer:
        for lo in range(0, audio.shape[0], BLOCK_SAMPLES):
            writer.write(audio[lo:lo + BLOCK_SAMPLES])
    return Path(path)


class AudioWriter:
    """An audio file written block by block (`write`) into a temporary file beside `path`, renamed onto `path`
    when the `with` block ends without an error (removed when it ends with one). `peak`: the largest magnitude
    written, before any clipping. Formats and clipping as `write_audio`."""

    def __init__(self, path: str | Path, sample_rate: int, bits: str = "24"):
        self.path = Path(path)
        self.format = {".wav": "WAV", ".flac": "FLAC"}.get(self.path.suffix.lower())
        if self.format is None:
            raise ValueError(f"cannot write {self.path.name}: use a .wav or .flac file name")
        if bits not in SUBTYPES or (self.format == "FLAC" and bits == "float"):
            raise ValueError(f"bit depth {bits!r} is not available for {self.format} "
                             f"(use 16, 24{' or float' if self.format == 'WAV' else ''})")
        self.sample_rate, self.bits = sample_rate, bits
        self.peak, self.clipped = 0.0, 0

    def __enter__(self) -> "AudioWriter":
        import soundfile as sf

        self._target = atomic_file(self.path, suffix=self.path.suffix + ".part")
        self.tmp = self._target.__enter__()
        try:
            self.file = sf.SoundFile(self.tmp, "w", self.sample_rate, 1, SUBTYPES[self.bits], format=self.format)
        except BaseException:
            self._target.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32)
        self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
        if self.bits != "float":
            self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))
            block = np.clip(block, -1.0, 1.0)
        self.file.write(block)

    def __exit__(self, kind, error, trace) -> None:
        try:
            self.file.close()
            if kind is None and self.format == "WAV" and self.bits == "float":
                drop_peak_chunk(self.tmp)
        except BaseException:
            self._target.__exit__(*sys.exc_info())
            raise
        self._target.__exit__(kind, error, trace)  # renames, or removes the temporary file and lets the error go on
        if kind is None and self.clipped:
            log.warning("%s: %d samples beyond full scale were clipped (peak %.3f)", self.path.name, self.clipped,
                        self.peak)


def wav_chunks(head: bytes) -> list[tuple[bytes, int, int]]:
    """(id, offset of its data, size) of each chunk of a RIFF/WAVE header (`head`: the file's first bytes), up to
    and including `data`; [] if it is not a WAV."""
    import struct

    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return []
    chunks, position = [], 12
    while position + 8 <= len(head):
        chunk, size = head[position:position + 4], struct.unpack_from("<I", head, position + 4)[0]
        chunks.append((chunk, position + 8, size))
        if chunk == b"data":
            break
        position += 8 + size + (size & 1)
    return chunks


def drop_peak_chunk(path: str | Path) -> None:
    """Turn a WAV's PEAK chunk (libsndfile writes one, with a time stamp, into float files) into padding of the
    same size: the data stays where it is."""
    with open(path, "r+b") as handle:
        head = handle.read(4096)
        for chunk, offset, size in wav_chunks(head):
            if chunk == b"PEAK":
                handle.seek(offset - 8)
                handle.write(b"PAD " + head[offset - 4:offset] + bytes(size))


def expression_document(clips: Sequence[Clip], controls: dict[str, tuple[float, ...]],
                        sounding: dict[str, tuple[float, ...]] | None = None) -> dict:
    """The per-note controls (and curves) as an editable JSON document (format: docs/engine.md); `sounding`: the
    controls measured from the final parameters (engine.curves.sounding_controls), written for reading only."""
    notes = []
    for clip in clips:
        for note in clip.notes:
            data = note_to_data(note)
            data["track"] = clip.name
            data["controls"] = {k: round(float(v), 6) for k, v in zip(CONTROL_NAMES, controls[note.id])}
            if sounding is not None and note.id in sounding:
                data["sounding"] = {k: round(float(v), 6) for k, v in zip(CONTROL_NAMES, sounding[note.id])}
            notes.append(data)
    return {"format": "ddsp-expression", "version": 1, "controls": list(CONTROL_NAMES), "notes": notes}


def read_expression(path: str | Path, clips: Sequence[Clip]) -> list[Clip]:
    """Apply an expression JSON file to clips by note id; the file's pitch must match the note's. An entry's
    "curves" replace the note's (an empty mapping removes them); an entry without "curves" leaves the note's own
    (e.g. from the MIDI file's pitch bend); "sounding" is ignored."""
    from daw_bridge.curves import CurveError, curves_from_data

    try:
        document = json.loads(Path(path).read_text())
        entries = document["notes"]
        if not isinstance(entries, list):
            raise TypeError("'notes' must be a list")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NoteError(f"cannot read expression file {path}: {error}") from None
    by_id = {note.id: note for clip in clips for note in clip.notes}
    controls, curves = {}, {}
    for entry in entries:
        try:
            note = by_id.get(str(entry["id"]))
            if note is None:
                continue
            if int(entry["pitch"]) != note.pitch:
                raise NoteError(f"expression file {path} does not match: note {note.id} has pitch {note.pitch}, "
                                f"the file says {entry['pitch']}")
            values = tuple(float(entry["controls"][name]) for name in CONTROL_NAMES)
            if "curves" in entry:
                curves[note.id] = curves_from_data(entry["curves"])
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, NoteError):
                raise
            if isinstance(error, CurveError):
                raise NoteError(f"expression file {path}: note {entry.get('id')}: {error}") from None
            raise NoteError(f"expression file {path}: bad entry {entry!r:.80}: {error}") from None
        if not all(0.0 <= v <= 1.0 for v in values):
            raise NoteError(f"expression file {path}: note {note.id} controls must lie in [0, 1]")
        controls[note.id] = values
    try:
        return [clip.with_controls(controls).with_curves(curves) for clip in clips]
    except NoteError as error:
        raise NoteError(f"expression file {path}: {error}") from None

