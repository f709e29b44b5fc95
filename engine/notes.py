"""Level 1 of the hierarchy: notes.

A `Clip` is a list of `Note`s (pitch, onset and offset in seconds, velocity, a stable id, optional per-note
expression controls, optional note curves: daw_bridge.curves), built from a MIDI file (pretty_midi: tempo changes
honoured) or from plain data (what a DAW sends). `Clip.voices()` splits polyphony into monophonic voices,
deterministically.

Bad input, and what happens to it (`repair=True` repairs what can be repaired and reports it; `repair=False`
raises `NoteError` instead):
- pitch outside 0..127, velocity outside 0..127, NaN/inf times, negative onset: always an error;
- zero or negative length: the note is dropped (repair) / error;
- same pitch overlapping itself (a DAW duplicate): the earlier note is cut at the later onset, and an exact
  duplicate (same pitch and onset) keeps only the longer one (repair) / error;
- no notes at all, more than `MAX_NOTES` notes, or a clip longer than `MAX_SECONDS`: always an error;
- a curve with an unknown name, a non-finite or out-of-range value or too many points: always an error; a curve
  reaching outside its note (also after a cut): clipped to the note (repair) / error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from daw_bridge.curves import CurveError, Curves, checked_curves, curves_from_data, curves_to_data

CONTROL_NAMES = (
    "volume",
    "volume_fluctuation",
    "volume_peak_position",
    "vibrato",
    "brightness",
    "attack_noise",
)
MAX_NOTES = 100_000
MAX_SECONDS = 3600.0


class NoteError(ValueError):
    """A clip or note that cannot be rendered; the message says why in one line."""


@dataclass(frozen=True)
class Note:
    pitch: int
    onset: float
    offset: float
    velocity: int = 100
    id: str = ""
    controls: tuple[float, ...] | None = None  # six values in CONTROL_NAMES order, each in [0, 1]
    curves: Curves = ()  # ((name, ((t, value), ...)), ...): t in seconds from the onset (daw_bridge.curves)

    def curve(self, name: str):
        """The breakpoints of curve `name`, or None."""
        return next((points for n, points in self.curves if n == name), None)

    @property
    def duration(self) -> float:
        return self.offset - self.onset


@dataclass
class Clip:
    notes: list[Note]
    name: str = ""
    program: int | None = None  # General MIDI program, when the source says
    repairs: list[str] = field(default_factory=list)

    @classmethod
    def from_data(cls, notes: list[dict], name: str = "", program: int | None = None, repair: bool = False) -> "Clip":
        """Build a clip from plain dicts: {pitch, onset, offset, velocity?, id?, controls?, curves?}."""
        built = []
        for index, raw in enumerate(notes):
            if not isinstance(raw, dict):
                raise NoteError(f"note {index}: expected a mapping, got {type(raw).__name__}")
            try:
                controls = raw.get("controls")
                if isinstance(controls, dict):
                    controls = tuple(float(controls[name]) for name in CONTROL_NAMES)
                elif controls is not None:
                    controls = tuple(float(v) for v in controls)
                built.append(Note(
                    pitch=int(raw["pitch"]),
                    onset=float(raw["onset"]),
                    offset=float(raw["offset"]),
                    velocity=int(raw.get("velocity", 100)),
                    id=str(raw.get("id", index)),
                    controls=controls,
                    curves=curves_from_data(raw.get("curves")),
                ))
            except KeyError as missing:
                raise NoteError(f"note {index}: missing field {missing}") from None
            except (TypeError, ValueError) as bad:
                raise NoteError(f"note {index}: {bad}") from None
        return cls(built, name=name, program=program).checked(repair=repair)

    def checked(self, repair: bool = True) -> "Clip":
        """Return a validated copy, notes sorted by (onset, pitch); raise `NoteError` on what cannot be repaired."""
        if not self.notes:
            raise NoteError(f"clip {self.name!r} has no notes" if self.name else "clip has no notes")
        if len(self.notes) > MAX_NOTES:
            raise NoteError(f"clip has {len(self.notes)} notes; at most {MAX_NOTES} are accepted")
        repairs = list(self.repairs)
        ids = set()
        kept = []
        for note in self.notes:
            _check_note(note)
            if note.id in ids:
                raise NoteError(f"note id {note.id!r} is used twice")
            ids.add(note.id)
            if note.duration <= 0:
                if not repair:
                    raise NoteError(f"note {note.id!r} has zero or negative length ({note.duration:.6f} s)")
                repairs.append(f"dropped note {note.id!r}: zero or negative length")
                continue
            kept.append(note)
        kept = _fix_self_overlaps(sorted(kept, key=_order), repair, repairs)
        kept = [_check_curves(note, repair, repairs) for note in kept]  # after the cuts: clipped to the new ends
        if not kept:
            raise NoteError("clip has no notes of positive length")
        end = max(note.offset for note in kept)
        if end > MAX_SECONDS:
            raise NoteError(f"clip ends at {end:.1f} s; at most {MAX_SECONDS:.0f} s are accepted")
        return Clip(kept, name=self.name, program=self.program, repairs=repairs)

    @property
    def end(self) -> float:
        return max(note.offset for note in self.notes)

    def voices(self) -> list[list[Note]]:
        """Split into monophonic voices: notes by onset (highest pitch first), each to the lowest-numbered voice
        that is free (its last note ended at or before this onset). Voice 0 carries the top line of chords."""
        voices: list[list[Note]] = []
        for note in sorted(self.notes, key=lambda n: (n.onset, -n.pitch, n.id)):
            for voice in voices:
                if voice[-1].offset <= note.onset + 1e-9:
                    voice.append(note)
                    break
            else:
                voices.append([note])
        return voices

    def with_controls(self, controls_by_id: dict[str, tuple[float, ...]]) -> "Clip":
        """Copy with the given notes' controls replaced (ids not in the clip are ignored)."""
        notes = [replace(n, controls=tuple(controls_by_id[n.id])) if n.id in controls_by_id else n for n in self.notes]
        return Clip(notes, name=self.name, program=self.program, repairs=list(self.repairs))

    def with_curves(self, curves_by_id: dict[str, Curves], repair: bool = False) -> "Clip":
        """Copy with the given notes' curves replaced (ids not in the clip are ignored), checked."""
        notes = [replace(n, curves=curves_by_id[n.id]) if n.id in curves_by_id else n for n in self.notes]
        repairs = list(self.repairs)
        notes = [_check_curves(n, repair, repairs) if n.id in curves_by_id else n for n in notes]
        return Clip(notes, name=self.name, program=self.program, repairs=repairs)

    def to_data(self) -> list[dict]:
        return [note_to_data(n) for n in self.notes]


def note_to_data(note: Note) -> dict:
    data = {"id": note.id, "pitch": note.pitch, "onset": note.onset, "offset": note.offset, "velocity": note.velocity}
    if note.controls is not None:
        data["controls"] = dict(zip(CONTROL_NAMES, note.controls))
    if note.curves:
        data["curves"] = curves_to_data(note.curves)
    return data


def _order(note: Note):
    return (note.onset, note.pitch, note.id)


def _check_note(note: Note) -> None:
    if not 0 <= note.pitch <= 127:
        raise NoteError(f"note {note.id!r}: pitch {note.pitch} is outside MIDI 0..127")
    if not 0 <= note.velocity <= 127:
        raise NoteError(f"note {note.id!r}: velocity {note.velocity} is outside 0..127")
    if not (math.isfinite(note.onset) and math.isfinite(note.offset)):
        raise NoteError(f"note {note.id!r}: onset/offset must be finite numbers")
    if note.onset < 0:
        raise NoteError(f"note {note.id!r}: onset {note.onset} s is before the clip start")
    if note.controls is not None:
        if len(note.controls) != len(CONTROL_NAMES):
            raise NoteError(f"note {note.id!r}: expected {len(CONTROL_NAMES)} controls, got {len(note.controls)}")
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in note.controls):
            raise NoteError(f"note {note.id!r}: controls must lie in [0, 1], got {list(note.controls)}")


def _check_curves(note: Note, repair: bool, repairs: list[str]) -> Note:
    """The note with its curves checked against its length (clipped to it with `repair`, noted in `repairs`)."""
    if not note.curves:
        return note
    try:
        curves, repaired = checked_curves(note.curves, note.duration, repair)
    except CurveError as error:
        raise NoteError(f"note {note.id!r}: {error}") from None
    repairs.extend(f"note {note.id!r}: {message}" for message in repaired)
    return replace(note, curves=curves) if repaired else note


def _fix_self_overlaps(notes: list[Note], repair: bool, repairs: list[str]) -> list[Note]:
    """Notes sorted by onset; a note overlapping an earlier one of the same pitch is a duplicate to repair."""
    last_by_pitch: dict[int, int] = {}
    out: list[Note | None] = []
    for note in notes:
        previous_index = last_by_pitch.get(note.pitch)
        previous = out[previous_index] if previous_index is not None else None
        if previous is not None and previous.offset > note.onset + 1e-9:
            if not repair:
                raise NoteError(f"notes {previous.id!r} and {note.id!r} overlap on the same pitch {note.pitch}")
            if note.onset - previous.onset <= 1e-9:
                longer = note if note.duration > previous.duration else previous
                shorter = previous if longer is note else note
                repairs.append(f"dropped note {shorter.id!r}: duplicate of {longer.id!r}")
                out[previous_index] = longer
                continue
            out[previous_index] = replace(previous, offset=note.onset)
            repairs.append(f"cut note {previous.id!r} at {note.onset:.4f} s where {note.id!r} repeats its pitch")
        last_by_pitch[note.pitch] = len(out)
        out.append(note)
    return [n for n in out if n is not None]


def clips_from_midi(path: str | Path, repair: bool = True, bend_range: float = 2.0,
                    mpe: str | None = None) -> list[Clip]:
    """One clip per non-drum MIDI instrument (track/program; an MPE zone's channels of a track together), times in
    seconds through the file's tempo map, with the curves of pitch bend, CC11, pressure and CC74 (`bend_range`:
    semitones where RPN 0 sets none; `mpe` "lower"/"upper": the MPE zone of a file without an MPE configuration
    message). Read by daw_bridge.midifile, so the DAW bridge and the engine name the same notes the same way. What
    reading the controllers repaired (a bend range over 96 semitones, a misplaced MPE
    configuration message) is in each clip's repairs, or an error without `repair`."""
    from daw_bridge.midifile import MidiError, read_midi_tracks

    try:
        tracks = read_midi_tracks(path, bend_range=bend_range, mpe=mpe)
    except MidiError as error:
        raise NoteError(str(error)) from None
    clips = []
    for track in tracks:
        if track["repairs"] and not repair:
            raise NoteError(f"{Path(path).name}: {track['repairs'][0]}")
        clip = Clip.from_data(track["notes"], name=track["name"], program=track["program"], repair=repair)
        clip.repairs[:0] = track["repairs"]
        clips.append(clip)
    return clips
