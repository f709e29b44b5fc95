"""What one render of a MIDI item sends: its notes (as REAPER plays them), their controls (remembered, or
edited on the lanes) and their curves (the item's pitch bend, CC11, pressure and CC74 events, MPE per-channel bends:
daw_bridge.midi_expression)."""
from __future__ import annotations

import hashlib
import json
import os
import time

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p
from daw_bridge.midi_expression import Event, attach_curves, expand_ramps, note_curves

from . import memory
from .lanes import Lanes
from .project import (current_project, is_render_track, item_span, item_string, midi_take, project_id,
                      project_sample_rate, track_bend_range, track_items, track_label, track_preset, track_string,
                      track_zones)
from .settings import EDIT_TOLERANCE, EVAL_AFTER, SAME_TIME, Skip


def read_notes(take, position: float, length: float) -> list[dict]:
    """The notes REAPER plays from this take: unmuted, starting inside the item, cut at its end. Times go through
    REAPER's own PPQ -> project time conversion (tempo map, take offset and rate included). Each note: id (stable
    while pitch and start do not change), pitch, velocity, onset/offset in seconds from the item start (sample 0 of
    the render) and `time`, its project time."""
    count = RPR_MIDI_CountEvts(take, 0, 0, 0)[2]
    notes, seen = [], {}
    for index in range(count):
        ok, _, _, _, muted, start, end, channel, pitch, velocity = RPR_MIDI_GetNote(take, index, 0, 0, 0.0, 0.0, 0,
                                                                                    0, 0)
        if not ok or muted:
            continue
        t0 = RPR_MIDI_GetProjTimeFromPPQPos(take, start)
        t1 = RPR_MIDI_GetProjTimeFromPPQPos(take, end)
        onset, offset = t0 - position, min(t1 - position, length)
        if onset < -SAME_TIME or onset >= length or offset - onset <= SAME_TIME:
            continue  # REAPER does not play a note that starts outside the item
        onset = max(onset, 0.0)
        base = f"{pitch}@{('%.3f' % start).rstrip('0').rstrip('.')}"
        seen[base] = seen.get(base, 0) + 1
        note_id = base if seen[base] == 1 else f"{base}#{seen[base]}"
        notes.append({"id": note_id, "pitch": int(pitch), "velocity": max(1, int(velocity)), "onset": onset,
                      "offset": offset, "time": t0, "channel": int(channel)})
    notes.sort(key=lambda n: (n["onset"], -n["pitch"]))
    return notes


KINDS = {0xA0: "poly", 0xB0: "cc", 0xD0: "pressure", 0xE0: "bend"}


def read_events(take, position: float) -> list[Event]:
    """The take's unmuted pitch-bend, CC, channel-pressure and key-pressure events (MIDI_GetCC), times in seconds
    from the item start (those before it count as the state at its start). A line shape other than square
    (MIDI_GetCCShape: linear, slow/fast, bezier) is played as a linear ramp to the lane's next event
    (daw_bridge.midi_expression.expand_ramps)."""
    count = RPR_MIDI_CountEvts(take, 0, 0, 0)[3]
    raw = []
    for index in range(count):
        ok, _, _, _, muted, ppq, chanmsg, channel, msg2, msg3 = RPR_MIDI_GetCC(take, index, 0, 0, 0.0, 0, 0, 0, 0)
        kind = KINDS.get(int(chanmsg))
        if not ok or muted or kind is None:
            continue
        shape = RPR_MIDI_GetCCShape(take, index, 0, 0.0)[3]
        number = int(msg2) if kind in ("cc", "poly") else 0
        value = {"bend": int(msg3) * 128 + int(msg2) - 8192, "pressure": int(msg2)}.get(kind, int(msg3))
        at = RPR_MIDI_GetProjTimeFromPPQPos(take, ppq) - position
        raw.append((Event(at, int(channel), kind, number, value), int(shape) != 0))
    return expand_ramps(raw)


def add_curves(notes: list[dict], take, track, position: float) -> None:
    """Give each note its curves from the take's bends and controllers (with the track's bend range and MPE
    setting)."""
    events = read_events(take, position)
    if not events:
        return
    attach_curves(notes, note_curves(notes, events, track_zones(track), track_bend_range(track)))


def check_overlaps(item, track) -> None:
    """Lanes belong to the track, so two MIDI items of one track must not overlap in time."""
    start, end = item_span(item)
    for other in track_items(track):
        if other == item or midi_take(other) is None:
            continue
        other_start, other_end = item_span(other)
        if other_start < end - SAME_TIME and start < other_end - SAME_TIME:
            raise Skip(f"it overlaps another MIDI item on track '{track_label(track)}' "
                       f"({start:.3f}-{end:.3f} s and {other_start:.3f}-{other_end:.3f} s): the expression lanes "
                       f"belong to the track, so move one of them to another track or trim them apart")


class ClipRequest:
    """Everything one render of one MIDI item sends, read from the project now. `signature` changes exactly when
    the render would (notes, controls to send, preset, rate, length, place). `project`: the active project's pointer
    (read when not given); `state`: the item's memory (read from its file when not given)."""

    def __init__(self, item, config: dict, regenerate: bool = False, project: str | None = None,
                 state: dict | None = None):
        self.item = item
        self.project = project or current_project()
        self.take = midi_take(item)
        if self.take is None:
            raise Skip("it is not a MIDI item")
        self.track = RPR_GetMediaItem_Track(item)
        if is_render_track(self.track):
            raise Skip("it is a DDSP render (select the MIDI item instead)")
        self.guid = item_string(item, "GUID")
        self.position, end = item_span(item)
        self.length = end - self.position
        self.label = f"'{track_label(self.track)}' item at {self.position:.3f} s"
        self.preset = track_preset(self.track)
        self.sample_rate = project_sample_rate()
        self.seed = int(config.get("seed", 0))
        if not p.MIN_SAMPLE_RATE <= self.sample_rate <= p.MAX_SAMPLE_RATE:
            raise Skip(f"the project rate {self.sample_rate} Hz is outside the engine's "
                       f"{p.MIN_SAMPLE_RATE}-{p.MAX_SAMPLE_RATE} Hz (set another in File > Project settings)")
        if self.length > p.MAX_SECONDS:
            raise Skip(f"it is {self.length:.0f} s long; the engine renders at most {p.MAX_SECONDS:.0f} s")
        self.notes = read_notes(self.take, self.position, self.length)
        if not self.notes:
            raise Skip("it has no notes to render (empty, all muted, or all outside the item)")
        add_curves(self.notes, self.take, self.track, self.position)
        if len(self.notes) > p.MAX_NOTES:
            raise Skip(f"it has {len(self.notes)} notes; the engine takes at most {p.MAX_NOTES}")
        self.regenerate = regenerate
        self.state = memory.load(item, memory.render_folder(config), self.guid) if state is None else state
        self.clip_id = f"reaper-{project_id()}-{self.guid.strip('{}')}"
        self.controls = self._controls(regenerate)
        self.signature = self._signature()

    def _controls(self, regenerate: bool) -> list:
        """Per note: None (the engine generates) for a note never rendered, or six values: what the engine gave
        last time, except where the user edited the lane at that note (the lane's value then)."""
        remembered = {} if regenerate else self.state.get("notes", {})
        lanes = Lanes(self.track, create=False, sample_rate=self.sample_rate)
        lanes_ok = lanes.readable and self.state.get("track") == track_string(self.track, "GUID")
        out = []
        for note in self.notes:
            kept = remembered.get(note["id"])
            if kept is None:
                out.append(None)
                continue
            controls, written = list(kept["c"]), kept.get("l", kept["c"])
            if lanes_ok and abs(kept["t"] - note["time"]) < SAME_TIME:
                t = note["time"] + min(EVAL_AFTER, (note["offset"] - note["onset"]) / 2)
                for k in range(6):
                    value = lanes.value(k, t)
                    if abs(value - written[k]) > EDIT_TOLERANCE:
                        controls[k] = min(1.0, max(0.0, value))
            out.append(controls)
        return out

    def _signature(self) -> str:
        data = [self.preset, self.sample_rate, self.seed, round(self.position, 9), round(self.length, 9),
                [(n["id"], n["pitch"], round(n["onset"], 9), round(n["offset"], 9), n["velocity"],
                  None if c is None else [round(x, 6) for x in c], n.get("curves"))
                 for n, c in zip(self.notes, self.controls)]]
        return hashlib.sha1(json.dumps(data).encode()).hexdigest()

    def wire_notes(self) -> list[dict]:
        return [{"id": n["id"], "pitch": n["pitch"], "onset": n["onset"], "offset": n["offset"],
                 "velocity": n["velocity"], "controls": c, **({"curves": n["curves"]} if "curves" in n else {})}
                for n, c in zip(self.notes, self.controls)]

    def file_name(self) -> str:
        """A fresh bare file name for the engine (docs/protocol.md: [A-Za-z0-9][A-Za-z0-9._-]*.wav)."""
        slug = "".join(ch if ch.isalnum() else "_" for ch in track_label(self.track))[:40].strip("_") or "track"
        return f"{slug}-{self.guid.strip('{}')[:8]}-{int(time.time() * 1000)}-{os.urandom(2).hex()}.wav"
