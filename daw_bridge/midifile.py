"""Notes of a MIDI file as protocol note dicts, read as the engine reads them (pretty_midi: tempo map honoured, one
track per non-drum instrument, ids "t<track>n<index>" as in engine.notes.clips_from_midi, so expression files and
control files name the same notes). No torch, no engine. Used by `python -m daw_bridge send`."""
from __future__ import annotations

from pathlib import Path


class MidiError(ValueError):
    pass


def read_midi_tracks(path: str | Path) -> list[dict]:
    """One entry per non-drum instrument with notes: {index, name, program, notes}; notes are
    {id, pitch, onset, offset, velocity} in seconds, sorted by (onset, pitch)."""
    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except FileNotFoundError:
        raise MidiError(f"no such MIDI file: {path}") from None
    except Exception as error:  # pretty_midi/mido raise many types on corrupt files
        raise MidiError(f"cannot read MIDI file {path}: {error}") from None
    tracks = []
    for index, instrument in enumerate(midi.instruments):
        if instrument.is_drum or not instrument.notes:
            continue
        ordered = sorted(instrument.notes, key=lambda n: (n.start, n.pitch, n.end))
        notes = [{"id": f"t{index}n{i}", "pitch": int(n.pitch), "onset": round(float(n.start), 9),
                  "offset": round(float(n.end), 9), "velocity": int(n.velocity)} for i, n in enumerate(ordered)]
        tracks.append({"index": index, "name": instrument.name.strip() or f"track {index}",
                       "program": int(instrument.program), "notes": notes})
    if not tracks:
        raise MidiError(f"MIDI file {path} has no pitched notes")
    return tracks


def read_tracks(path: str | Path) -> list[tuple[int, list[dict]]]:
    """(track index, notes) per non-drum instrument with notes (see `read_midi_tracks`)."""
    return [(track["index"], track["notes"]) for track in read_midi_tracks(path)]
