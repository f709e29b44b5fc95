"""Notes of a MIDI file as protocol note dicts, read as the engine reads them (pretty_midi: tempo map honoured, one
track per non-drum instrument, ids "t<track>n<index>" as in engine.notes.clips_from_midi, so expression files and
control files name the same notes), with the curves their pitch bend, CC11, pressure and CC74 make
(daw_bridge.midi_expression; MPE zones merge a track's member channels into one track). No torch, no engine. Used
by `python -m daw_bridge send` and by the engine."""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from .midi_expression import DEFAULT_BEND_SEMITONES, Event, attach_curves, mpe_zones, note_curves


class MidiError(ValueError):
    pass


def read_midi_tracks(path: str | Path, bend_range: float = DEFAULT_BEND_SEMITONES,
                     mpe: str | None = None) -> list[dict]:
    """One entry per non-drum instrument with notes: {index, name, program, notes, repairs}; notes are
    {id, pitch, onset, offset, velocity, curves?} in seconds, sorted by (onset, pitch). `bend_range`: the pitch-bend
    range in semitones of channels that set none with RPN 0 (the track setting); `mpe` "lower" or "upper": the MPE
    zone (15 member channels) of a file that carries no MPE configuration message. The notes of an MPE zone's
    channels on one track form one entry (the index of its first instrument)."""
    import mido
    import pretty_midi

    try:
        data = Path(path).read_bytes()
        midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
        raw = mido.MidiFile(file=io.BytesIO(data))
    except FileNotFoundError:
        raise MidiError(f"no such MIDI file: {path}") from None
    except Exception as error:  # pretty_midi/mido raise many types on corrupt files
        raise MidiError(f"cannot read MIDI file {path}: {error}") from None
    keys = instrument_keys(raw)
    if len(keys) != len(midi.instruments):  # cannot happen: the same file read the same way
        raise MidiError(f"cannot read MIDI file {path}: instruments differ between readers")
    events = channel_events(raw, midi.tick_to_time)
    repairs: list[str] = []
    zones = mpe_zones([e for track in events for e in track], repairs)
    if mpe and not zones.active:
        if mpe not in ("lower", "upper"):
            raise MidiError(f"MPE zone {mpe!r}: use lower or upper")
        setattr(zones, mpe, 15)
    groups: dict[tuple, list[int]] = {}
    for index, (instrument, (_, channel, track)) in enumerate(zip(midi.instruments, keys)):
        if instrument.is_drum or not instrument.notes:
            continue
        zone = zones.zone_of(channel)
        groups.setdefault((track, zone) if zone is not None else ("instrument", index), []).append(index)
    tracks = []
    for members in groups.values():
        index = members[0]
        track = keys[index][2]
        notes = sorted(((n, keys[i][1]) for i in members for n in midi.instruments[i].notes),
                       key=lambda nc: (nc[0].start, nc[0].pitch, nc[0].end, nc[1]))
        dicts = [{"id": f"t{index}n{i}", "pitch": int(n.pitch), "onset": round(float(n.start), 9),
                  "offset": round(float(n.end), 9), "velocity": int(n.velocity)} for i, (n, _) in enumerate(notes)]
        track_repairs = list(repairs)
        found = note_curves([{"pitch": n.pitch, "onset": n.start, "offset": n.end, "channel": c} for n, c in notes],
                            events[track], zones, bend_range, track_repairs)  # unrounded times: events at a note's tick
        attach_curves(dicts, found)
        programs = Counter(midi.instruments[i].program for i in members if keys[i][1] in (0, 15)) or \
            Counter(midi.instruments[i].program for i in members)
        name = midi.instruments[index].name.strip() or f"track {index}"
        tracks.append({"index": index, "name": name, "program": int(programs.most_common(1)[0][0]),
                       "notes": dicts, "repairs": list(dict.fromkeys(track_repairs))})
    if not tracks:
        raise MidiError(f"MIDI file {path} has no pitched notes")
    return tracks


def instrument_keys(raw) -> list[tuple[int, int, int]]:
    """(program, channel, track) of each of pretty_midi's instruments, in its order: it makes an instrument when
    the first note of a (program, channel, track) ends (pretty_midi.PrettyMIDI._load_instruments, replayed)."""
    keys: dict[tuple[int, int, int], None] = {}
    for track_index, track in enumerate(raw.tracks):
        tick, program = 0, [0] * 16
        open_notes: dict[tuple[int, int], list[int]] = {}
        for message in track:
            tick += message.time
            if message.type == "program_change":
                program[message.channel] = message.program
            elif message.type == "note_on" and message.velocity > 0:
                open_notes.setdefault((message.channel, message.note), []).append(tick)
            elif message.type in ("note_on", "note_off") and (message.channel, message.note) in open_notes:
                key = (message.channel, message.note)
                starts = open_notes[key]
                closing = [s for s in starts if s != tick]
                keeping = [s for s in starts if s == tick]
                if closing:
                    keys.setdefault((program[message.channel], message.channel, track_index), None)
                if closing and keeping:
                    open_notes[key] = keeping
                else:
                    del open_notes[key]
    return list(keys)


def channel_events(raw, tick_to_time) -> list[list[Event]]:
    """Per track: its pitch-bend, controller, channel-pressure and key-pressure events, times in seconds."""
    kinds = {"pitchwheel": "bend", "control_change": "cc", "aftertouch": "pressure", "polytouch": "poly"}
    out = []
    for track in raw.tracks:
        tick, events = 0, []
        for message in track:
            tick += message.time
            kind = kinds.get(message.type)
            if kind == "bend":
                events.append(Event(float(tick_to_time(tick)), message.channel, kind, 0, message.pitch))
            elif kind == "cc":
                events.append(Event(float(tick_to_time(tick)), message.channel, kind, message.control, message.value))
            elif kind == "pressure":
                events.append(Event(float(tick_to_time(tick)), message.channel, kind, 0, message.value))
            elif kind == "poly":
                events.append(Event(float(tick_to_time(tick)), message.channel, kind, message.note, message.value))
        out.append(events)
    return out


def read_tracks(path: str | Path, bend_range: float = DEFAULT_BEND_SEMITONES,
                mpe: str | None = None) -> list[tuple[int, list[dict]]]:
    """(track index, notes) per non-drum instrument with notes (see `read_midi_tracks`)."""
    return [(track["index"], track["notes"]) for track in read_midi_tracks(path, bend_range, mpe)]
