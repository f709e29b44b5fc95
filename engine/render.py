"""Notes -> controls -> synthesis parameters -> audio, per voice, mixed; audio files written atomically.

A note with onset t sounds from sample round(t * sample_rate): each voice is multiplied by a gate that opens there
(1 ms linear fade-in from its first sample) and closes at round(offset * sample_rate) (5 ms fade-out before it), so frame-rate parameters
never smear a note outside its bounds. Reverb is applied per preset to the sum of its voices.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .dsp import check_sample_rate, synthesize
from daw_bridge.files import write_atomic
from .notes import CONTROL_NAMES, Clip, Note, NoteError, note_to_data
from .params import SynthParams, frames_for
from .presets import Preset

FADE_IN_SECONDS = 0.001
FADE_OUT_SECONDS = 0.005
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}


@dataclass
class VoiceRender:
    notes: list[Note]
    controls: torch.Tensor  # (n_notes, 6)
    params: SynthParams
    dry: np.ndarray  # (n_samples,)


@dataclass
class RenderResult:
    audio: np.ndarray  # (n_samples,) float32 mix
    sample_rate: int
    controls: dict[str, tuple[float, ...]]  # note id -> six controls used
    voices: list[VoiceRender] = field(default_factory=list)
    stems: list[np.ndarray] | None = None  # per voice, with reverb, when asked for

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def resolve_controls(notes: Sequence[Note], preset: Preset) -> torch.Tensor:
    """Controls per note (n, 6): the note's own where given, the preset's expression generator elsewhere."""
    given = [n.controls for n in notes]
    if all(c is not None for c in given):
        return torch.tensor(given, dtype=torch.float32).reshape(len(notes), 6)
    generated = preset.expression.generate(notes).clamp(0.0, 1.0)
    for i, c in enumerate(given):
        if c is not None:
            generated[i] = torch.tensor(c)
    return generated


def note_gate(notes: Sequence[Note], n_samples: int, sample_rate: int) -> np.ndarray:
    """(n_samples,) 0..1: open over each note, exact to the sample at onsets; voice notes must not overlap."""
    gate = np.zeros(n_samples, dtype=np.float32)
    fade_in = max(1, int(round(FADE_IN_SECONDS * sample_rate)))
    fade_out = max(1, int(round(FADE_OUT_SECONDS * sample_rate)))
    for i, note in enumerate(notes):
        start = int(round(note.onset * sample_rate))
        stop = min(int(round(note.offset * sample_rate)), n_samples)
        if start >= stop:
            continue
        gate[start:stop] = 1.0
        joined_before = i > 0 and int(round(notes[i - 1].offset * sample_rate)) >= start
        joined_after = i + 1 < len(notes) and int(round(notes[i + 1].onset * sample_rate)) <= stop
        if not joined_before:
            n = min(fade_in, stop - start)
            gate[start:start + n] = np.arange(1, n + 1, dtype=np.float32) / fade_in
        if not joined_after:
            n = min(fade_out, stop - start)
            gate[stop - n:stop] = np.minimum(gate[stop - n:stop], np.arange(n, 0, -1, dtype=np.float32) / fade_out)
    return gate


def render_voice(notes: Sequence[Note], preset: Preset, sample_rate: int, n_samples: int, seed: int) -> VoiceRender:
    """One monophonic voice, dry (no reverb)."""
    controls = resolve_controls(notes, preset)
    n_frames = frames_for(max(n_samples / sample_rate, max(n.offset for n in notes)))
    with torch.no_grad():
        params = preset.synthesis.generate(notes, controls, n_frames)
    dry = synthesize(params, sample_rate, n_samples, seed=seed).numpy()
    dry *= note_gate(notes, n_samples, sample_rate)
    return VoiceRender(list(notes), controls, params, dry)


def render_clips(parts: Sequence[tuple[Clip, Preset]], sample_rate: int, seed: int = 0,
                 duration: float | None = None, stems: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> RenderResult:
    """Render clips, each with its preset, into one mix of `duration` seconds (default: last offset + reverb tail).

    The same parts, rate and seed give the same samples.
    """
    check_sample_rate(sample_rate)
    if not parts:
        raise NoteError("nothing to render: no clips")
    if duration is None:
        duration = max(clip.end + preset.reverb.tail_seconds for clip, preset in parts)
    if not (0 < duration <= 3600 + 60):
        raise NoteError(f"render length {duration!r} s is out of range")
    n_samples = int(round(duration * sample_rate))
    voice_lists = [clip.voices() for clip, _ in parts]
    total, done = sum(len(v) for v in voice_lists), 0
    mix = np.zeros(n_samples, dtype=np.float32)
    result = RenderResult(mix, sample_rate, {}, [], [] if stems else None)
    dry_by_preset: dict[int, tuple[Preset, np.ndarray]] = {}  # reverb is linear: one convolution per preset
    for clip_index, ((clip, preset), voices) in enumerate(zip(parts, voice_lists)):
        dry_sum = dry_by_preset.setdefault(id(preset), (preset, np.zeros(n_samples, dtype=np.float32)))[1]
        for voice_index, notes in enumerate(voices):
            voice = render_voice(notes, preset, sample_rate, n_samples, seed=seed * 1009 + clip_index * 101 + voice_index)
            dry_sum += voice.dry
            result.voices.append(voice)
            result.controls.update({n.id: tuple(float(x) for x in c) for n, c in zip(notes, voice.controls)})
            if stems:
                result.stems.append(preset.reverb.get_signal(voice.dry, sample_rate)[:n_samples])
            done += 1
            if progress:
                progress(done, total)
    for preset, dry_sum in dry_by_preset.values():
        mix += preset.reverb.get_signal(dry_sum, sample_rate)[:n_samples]
    return result


def render_clip(clip: Clip, preset: Preset, sample_rate: int, **kwargs) -> RenderResult:
    return render_clips([(clip, preset)], sample_rate, **kwargs)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, bits: str = "24") -> Path:
    """Write WAV or FLAC (by extension) atomically: a temporary file in the same folder, then rename.

    bits: "16", "24" or "float" (FLAC has no float). Samples beyond +-1 are clipped for integer formats.
    """
    import soundfile as sf

    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write {path.name}: use a .wav or .flac file name")
    if bits not in SUBTYPES or (fmt == "FLAC" and bits == "float"):
        raise ValueError(f"bit depth {bits!r} is not available for {fmt} (use 16, 24{' or float' if fmt == 'WAV' else ''})")
    data = audio if bits == "float" else np.clip(audio, -1.0, 1.0)
    return write_atomic(path, lambda tmp: sf.write(tmp, data, sample_rate, subtype=SUBTYPES[bits], format=fmt),
                        suffix=path.suffix + ".part")


def expression_document(clips: Sequence[Clip], controls: dict[str, tuple[float, ...]]) -> dict:
    """The per-note controls as an editable JSON document (format: docs/engine.md)."""
    notes = []
    for clip in clips:
        for note in clip.notes:
            data = note_to_data(note)
            data["track"] = clip.name
            data["controls"] = {k: round(float(v), 6) for k, v in zip(CONTROL_NAMES, controls[note.id])}
            notes.append(data)
    return {"format": "ddsp-expression", "version": 1, "controls": list(CONTROL_NAMES), "notes": notes}


def read_expression(path: str | Path, clips: Sequence[Clip]) -> list[Clip]:
    """Apply an expression JSON file to clips by note id; the file's pitch must match the note's."""
    try:
        document = json.loads(Path(path).read_text())
        entries = document["notes"]
        if not isinstance(entries, list):
            raise TypeError("'notes' must be a list")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NoteError(f"cannot read expression file {path}: {error}") from None
    by_id = {note.id: note for clip in clips for note in clip.notes}
    controls = {}
    for entry in entries:
        try:
            note = by_id.get(str(entry["id"]))
            if note is None:
                continue
            if int(entry["pitch"]) != note.pitch:
                raise NoteError(f"expression file {path} does not match: note {note.id} has pitch {note.pitch}, "
                                f"the file says {entry['pitch']}")
            values = tuple(float(entry["controls"][name]) for name in CONTROL_NAMES)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, NoteError):
                raise
            raise NoteError(f"expression file {path}: bad entry {entry!r:.80}: {error}") from None
        if not all(0.0 <= v <= 1.0 for v in values):
            raise NoteError(f"expression file {path}: note {note.id} controls must lie in [0, 1]")
        controls[note.id] = values
    return [clip.with_controls(controls) for clip in clips]

