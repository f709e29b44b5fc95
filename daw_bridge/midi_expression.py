"""MIDI channel messages -> note curves (daw_bridge.curves): pitch bend, CC11, pressure, CC74, MPE zones. Pure
Python; shared by the MIDI-file reader (daw_bridge.midifile, which the engine uses too) and the DAW scripts, so
every way in turns the same performance into the same curves.

Events are `Event(time, channel, kind, number, value)`: time in seconds, channel 0..15 (MIDI channel 1 is 0),
kind "bend" (value -8192..8191, 0 = centre), "cc" (number = controller, value 0..127), "pressure" (channel
pressure, value 0..127) or "poly" (polyphonic key pressure, number = key). Notes are dicts with pitch, onset,
offset (seconds) and channel.

The mapping (docs/engine.md, "Note curves from MIDI"):
- pitch bend -> cents = bend / 8192 x range. The range: RPN 0 (CC101 = 0, CC100 = 0, then CC6 semitones and CC38
  cents) on the channel, else the track's setting (`bend_range`, default 2 semitones); at most 96 semitones (a
  larger RPN 0 is clamped, with a repair message).
- CC11 (expression) -> gain_db = 40 log10(v / 127) (GM2's recommended curve; v = 0 -> -120 dB).
- pressure -> gain_db += PRESSURE_BOOST_DB x p / 127: pressure adds level, so a note without pressure, or at
  pressure 0, sounds as before. Polyphonic key pressure for the note's key wins over channel pressure.
- CC74 -> brightness offset (v - 64) / 64 x SLIDE_RANGE.
- CC7 (volume) is the track's fader, not a curve: ignored.
- MPE (MIDI Polyphonic Expression 1.0, MMA/AMEI RP-053): an MPE Configuration Message (RPN 6, member-channel count
  in CC6) on channel 1 sets the lower zone (master 1, members 2 ..), on channel 16 the upper zone (master 16,
  members 15 down); a later zone that overlaps an earlier one shrinks it; 0 members removes the zone. An MCM on any
  other channel is ignored, with a repair message. A note on a member channel takes its own channel's bend at the
  member range (default 48 semitones; RPN 0 on any member channel sets it for all the zone's members) plus the
  master channel's bend at the master range (default 2 semitones, RPN 0 on the master), and its own channel's
  CC11, pressure and CC74. Zones hold for the whole file (the last MCM of each zone counts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

from .curves import Curves, bend_cents, clamp, combined_steps, curves_to_data, gather, note_points

DEFAULT_BEND_SEMITONES = 2.0
MPE_MEMBER_BEND_SEMITONES = 48.0
MPE_MASTER_BEND_SEMITONES = 2.0
MAX_BEND_SEMITONES = 96.0  # the MPE limit for RPN 0
PRESSURE_BOOST_DB = 12.0  # full pressure (127) adds this much level
SLIDE_RANGE = 0.25  # CC74 0 .. 127 -> brightness offset -0.25 .. +0.246 (harmonic centroid -3 .. +3 harmonics)
EXPRESSION_FLOOR_DB = -120.0
LOWER_MASTER, UPPER_MASTER = 0, 15


class Event(NamedTuple):
    time: float
    channel: int
    kind: str  # "bend", "cc", "pressure", "poly"
    number: int
    value: int


RAMP_STEP = 0.01  # s between the steps an interpolated controller line is played as


def expand_ramps(events: Sequence[tuple[Event, bool]], step: float = RAMP_STEP) -> list[Event]:
    """Events, each with whether the line from it to the next event of its lane (channel, kind, number) is
    interpolated (a DAW's linear or shaped line) rather than a step -> events, sorted by time, with each such line
    played as steps every `step` seconds on a linear ramp (as a DAW plays it as a stream of events; curved
    shapes are taken as linear)."""
    out: list[Event] = []
    following: dict[tuple, Event] = {}
    for event, ramps in sorted(events, key=lambda e: e[0].time, reverse=True):
        lane = (event.channel, event.kind, event.number)
        out.append(event)
        after = following.get(lane)
        if ramps and after is not None and after.time - event.time > step:
            steps = int((after.time - event.time) / step)
            for k in range(1, steps):
                fraction = k / steps
                out.append(event._replace(time=event.time + fraction * (after.time - event.time),
                                          value=int(round(event.value + fraction * (after.value - event.value)))))
        following[lane] = event
    return sorted(out, key=lambda e: e.time)


def expression_db(value: float | None) -> float:
    """CC11 0..127 -> dB: 40 log10(v / 127), -120 at 0; 0 when absent."""
    if value is None:
        return 0.0
    return EXPRESSION_FLOOR_DB if value <= 0 else max(EXPRESSION_FLOOR_DB, 40.0 * math.log10(value / 127.0))


def pressure_db(value: float | None) -> float:
    return 0.0 if value is None else PRESSURE_BOOST_DB * value / 127.0


def slide_brightness(value: float | None) -> float:
    return 0.0 if value is None else (value - 64.0) / 64.0 * SLIDE_RANGE


@dataclass
class Zones:
    """MPE zones: member-channel counts of the lower (master channel 1) and upper (master 16) zone; 0 = none."""
    lower: int = 0
    upper: int = 0

    def members(self, master: int) -> range:
        if master == LOWER_MASTER:
            return range(1, 1 + self.lower)
        return range(15 - self.upper, 15)

    def master_of(self, channel: int) -> int | None:
        """The master channel of the zone `channel` is a member of, or None."""
        for master in (LOWER_MASTER, UPPER_MASTER):
            if channel in self.members(master):
                return master
        return None

    def is_master(self, channel: int) -> bool:
        """Whether `channel` is the master channel of an active zone."""
        return (channel == LOWER_MASTER and self.lower > 0) or (channel == UPPER_MASTER and self.upper > 0)

    def zone_of(self, channel: int) -> int | None:
        """The master channel of the zone `channel` belongs to (as master or member), or None."""
        return channel if self.is_master(channel) else self.master_of(channel)

    @property
    def active(self) -> bool:
        return bool(self.lower or self.upper)


def _rpn_values(events: Sequence[Event]) -> list[tuple[float, int, int, float]]:
    """(time, channel, rpn, value) for each RPN data entry: RPN 0 in semitones (CC6 + CC38 / 100), other RPNs
    their CC6 value. Follows CC101/100 per channel; the null RPN (127/127) deselects."""
    selected: dict[int, list[int | None]] = {}
    data: dict[int, list[int]] = {}
    out = []
    for event in sorted((e for e in events if e.kind == "cc"), key=lambda e: e.time):
        msb_lsb = selected.setdefault(event.channel, [None, None])
        if event.number == 101:
            msb_lsb[0] = event.value
        elif event.number == 100:
            msb_lsb[1] = event.value
        elif event.number in (6, 38) and None not in msb_lsb and msb_lsb != [127, 127]:
            rpn = msb_lsb[0] * 128 + msb_lsb[1]
            coarse_fine = data.setdefault(event.channel * 16384 + rpn, [0, 0])
            coarse_fine[0 if event.number == 6 else 1] = event.value
            value = coarse_fine[0] + coarse_fine[1] / 100.0 if rpn == 0 else float(coarse_fine[0])
            out.append((event.time, event.channel, rpn, value))
    return out


def mpe_zones(events: Iterable[Event], repairs: list[str]) -> Zones:
    """The MPE zones the file's MCMs (RPN 6) set, in time order; misplaced ones are ignored (noted in repairs)."""
    return _zones(_rpn_values(list(events)), repairs)


def _zones(rpns: Sequence[tuple[float, int, int, float]], repairs: list[str]) -> Zones:
    """mpe_zones from the RPN data entries (`_rpn_values`)."""
    zones = Zones()
    for time, channel, rpn, count in rpns:
        if rpn != 6:
            continue
        if channel not in (LOWER_MASTER, UPPER_MASTER):
            repairs.append(f"MPE configuration message on channel {channel + 1} at {time:.3f} s ignored: "
                           "zones are set on channel 1 (lower) or 16 (upper)")
            continue
        count = min(int(count), 15)
        if channel == LOWER_MASTER:
            zones.lower = count
            zones.upper = min(zones.upper, max(0, 14 - count)) if count < 15 else 0
        else:
            zones.upper = count
            zones.lower = min(zones.lower, max(0, 14 - count)) if count < 15 else 0
    return zones


def _bend_ranges(rpns: Sequence[tuple[float, int, int, float]], zones: Zones, bend_range: float,
                 repairs: list[str]) -> dict[int, tuple[list[tuple[float, float]], float]]:
    """Per channel: (RPN 0 range events in semitones, default range), from the RPN data entries (`_rpn_values`).
    Member channels of a zone share theirs."""
    by_channel: dict[int, list[tuple[float, float]]] = {c: [] for c in range(16)}
    for time, channel, rpn, semitones in rpns:
        if rpn != 0:
            continue
        if semitones > MAX_BEND_SEMITONES:
            repairs.append(f"pitch-bend range {semitones:g} semitones on channel {channel + 1} at {time:.3f} s "
                           f"clamped to {MAX_BEND_SEMITONES:g}")
            semitones = MAX_BEND_SEMITONES
        master = zones.master_of(channel)
        targets = zones.members(master) if master is not None else [channel]
        for target in targets:
            by_channel[target].append((time, semitones))
    ranges = {}
    for channel in range(16):
        if zones.master_of(channel) is not None:
            default = MPE_MEMBER_BEND_SEMITONES
        elif zones.is_master(channel):
            default = MPE_MASTER_BEND_SEMITONES
        else:
            default = bend_range
        ranges[channel] = (sorted(by_channel[channel], key=lambda e: e[0]), default)
    return ranges


class _Streams:
    """The events of a track indexed by (channel, kind, number): each a stream [(time, value), ...] in time order."""

    def __init__(self, events: Sequence[Event]):
        self.index: dict[tuple[int, str, int], list[tuple[float, float]]] = {}
        for e in sorted(events, key=lambda e: e.time):
            number = e.number if e.kind in ("cc", "poly") else 0
            self.index.setdefault((e.channel, e.kind, number), []).append((e.time, float(e.value)))

    def get(self, channel: int, kind: str, number: int = 0) -> list[tuple[float, float]]:
        return self.index.get((channel, kind, number), [])


def note_curves(notes: Sequence[dict], events: Sequence[Event], zones: Zones | None = None,
                bend_range: float = DEFAULT_BEND_SEMITONES, repairs: list[str] | None = None) -> list[Curves]:
    """Curves for each note (dicts with pitch, onset, offset, channel) from the channel events of its track.
    `zones`: the MPE zones (default: from these events' MCMs); `repairs` collects what was repaired."""
    repairs = [] if repairs is None else repairs
    rpns = _rpn_values(events)
    zones = _zones(rpns, repairs) if zones is None else zones
    ranges = _bend_ranges(rpns, zones, bend_range, repairs)
    streams = _Streams(events)
    steps: dict[tuple, list[tuple[float, float]]] = {}

    def cached(key, make):
        if key not in steps:
            steps[key] = make()
        return steps[key]

    out = []
    for note in notes:
        channel, onset, offset = int(note.get("channel", 0)), float(note["onset"]), float(note["offset"])
        key = int(note["pitch"]) if streams.get(channel, "poly", int(note["pitch"])) else None
        cents = cached(("cents", channel), lambda: _cents_steps(streams, channel, zones, ranges))
        gain = cached(("gain", channel, key), lambda: combined_steps(
            [streams.get(channel, "cc", 11),
             streams.get(channel, "poly", key) if key is not None else streams.get(channel, "pressure")],
            [None, None], lambda e, p: clamp(expression_db(e) + pressure_db(p), "gain_db")))
        slide = cached(("slide", channel), lambda: combined_steps([streams.get(channel, "cc", 74)], [None],
                                                                  slide_brightness))
        out.append(gather([("cents", note_points(cents, onset, offset, 0.0)),
                           ("gain_db", note_points(gain, onset, offset, 0.0)),
                           ("brightness", note_points(slide, onset, offset, 0.0))]))
    return out


def attach_curves(notes: Sequence[dict], curves: Sequence[Curves]) -> None:
    """Put each note's curves (from `note_curves`) into its dict as data, where it has any."""
    for note, found in zip(notes, curves):
        if found:
            note["curves"] = curves_to_data(found)


def _cents_steps(streams: _Streams, channel: int, zones: Zones,
                 ranges: dict[int, tuple[list[tuple[float, float]], float]]) -> list[tuple[float, float]]:
    """The channel's bend in cents over time; a member channel's adds its master channel's bend."""
    own_range, own_default = ranges[channel]
    sources = [streams.get(channel, "bend"), own_range]
    defaults: list[float | None] = [None, own_default]
    master = zones.master_of(channel)
    if master is not None:
        master_range, master_default = ranges[master]
        sources += [streams.get(master, "bend"), master_range]
        defaults += [None, master_default]
    if not sources[0] and (master is None or not sources[2]):
        return []

    def cents(bend, semitones, master_bend=None, master_semitones=0.0):
        return clamp(bend_cents(bend, semitones) + bend_cents(master_bend, master_semitones), "cents")

    return combined_steps(sources, defaults, cents)
