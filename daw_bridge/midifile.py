"""Notes of a MIDI file as protocol note dicts (times in seconds through the file's tempo map), with mido only:
no torch, no engine. Used by `python -m daw_bridge send`."""
from __future__ import annotations

from collections import defaultdict, deque
from pathlib import Path

DRUM_CHANNEL = 9


class MidiError(ValueError):
    pass


def read_tracks(path: str | Path) -> list[tuple[int, list[dict]]]:
    """(track index, notes) for every track with pitched notes; notes are {id, pitch, onset, offset, velocity} with
    ids "t<track>n<index>", sorted by onset. Channel 10 (drums) is skipped; an unfinished note ends at its track's
    last event."""
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except FileNotFoundError:
        raise MidiError(f"no such MIDI file: {path}") from None
    except Exception as error:  # mido raises many types on corrupt files
        raise MidiError(f"cannot read MIDI file {path}: {error}") from None
    if midi.type == 2:
        raise MidiError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    seconds = _tick_clock(midi)
    tracks = []
    for index, events in enumerate(midi.tracks):
        tick, sounding, found = 0, defaultdict(deque), []
        for message in events:
            tick += message.time
            if message.type not in ("note_on", "note_off") or message.channel == DRUM_CHANNEL:
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                sounding[key].append((tick, message.velocity))
            elif sounding[key]:
                start, velocity = sounding[key].popleft()
                found.append((start, tick, message.note, velocity))
        found += [(start, tick, key[1], velocity) for key, queue in sounding.items() for start, velocity in queue]
        found.sort(key=lambda n: (n[0], n[2]))
        notes = [{"id": f"t{index}n{i}", "pitch": pitch, "onset": round(seconds(start), 9),
                  "offset": round(seconds(stop), 9), "velocity": velocity}
                 for i, (start, stop, pitch, velocity) in enumerate(found) if stop > start]
        if notes:
            tracks.append((index, notes))
    if not tracks:
        raise MidiError(f"{path} has no pitched notes")
    return tracks


def _tick_clock(midi):
    """Ticks -> seconds through the file's tempo changes (any track)."""
    changes, tick = [], 0
    for track in midi.tracks[:1] if midi.type == 0 else midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                changes.append((tick, message.tempo))
    changes.sort()
    segments = [(0, 0.0, 500000)]  # (start tick, start seconds, microseconds per beat)
    for at, tempo in changes:
        start, offset, current = segments[-1]
        segments.append((at, offset + (at - start) * current / 1e6 / midi.ticks_per_beat, tempo))

    def seconds(ticks: int) -> float:
        start, offset, tempo = next(s for s in reversed(segments) if s[0] <= ticks)
        return offset + (ticks - start) * tempo / 1e6 / midi.ticks_per_beat

    return seconds
