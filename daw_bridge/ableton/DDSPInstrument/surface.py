"""The Control Surface: a tick every ~100 ms (re-armed with `schedule_message`) does a bounded amount of work and
returns; there are no threads and no blocking calls (the engine socket is non-blocking).

Each tick: read the engine's replies (finished renders are placed and their controls written as lane steps), look
at the "DDSP Expression" racks (the Render and Follow macros), check a few followed clips for edits, start the
renders that are due, write a bounded number of lane steps, send what the protocol wants sent.

- Render (turn the macro past its middle; the script turns it back): renders the clip shown in Live's Detail view
  when it is a MIDI clip of that track, else every MIDI clip of the track.
- Follow (on while past its middle): the track is marked for rendering: each of its MIDI clips is rendered, then
  re-rendered once it has been left alone for `debounce_seconds` after a note or lane edit (that clip only).
"""
from __future__ import annotations

import os
import random
import time
import traceback
from collections import deque
from dataclasses import dataclass

from . import clips, config, expression, lanes, placement
from .host import ControlSurface
from .link import EngineLink, protocol

PROGRESS_EVERY = 0.5  # seconds between status-bar progress updates
REFRESH_EVERY = 1.0  # seconds between looks at the track list (new racks, new clips on followed tracks)
BUSY_RETRY = 1.0  # seconds before a render the engine refused as busy is sent again


@dataclass
class Snapshot:
    """A clip as read at one moment: what a render request is made of, and its fingerprint for edit detection."""
    window: clips.Window
    notes: list  # clips.Occurrence
    plan: list  # lane steps [(start, length)] (empty for Arrangement clips: they have no clip envelopes)
    lanes: dict | None
    tempo: float
    start: float  # Arrangement position (beats)
    fingerprint: tuple


class ClipState:
    """What the script knows about one MIDI clip (by position when first seen; it follows the clip if moved)."""

    def __init__(self, key: str, token: str):
        self.key = key
        self.label = repr(key)  # the clip's name as the producer sees it, set at each render
        self.engine_id = clips.engine_clip_id(token, key)
        self.tag = clips.render_tag(key)
        self.clip = self.track = self.slot = None
        self.seen = None  # fingerprint at the last look
        self.rendered = None  # fingerprint the placed render was made from
        self.due = None  # time.monotonic() at which to start a render
        self.session = None  # protocol.RenderSession in flight
        self.sent = None  # Snapshot of the request in flight
        self.memos = {}  # note id -> expression.Memo
        self.writing = False  # lane steps being written


@dataclass
class TrackEntry:
    track: object
    rack: lanes.Rack
    following: bool = False


@dataclass
class LaneJob:
    state: ClipState
    steps: object  # generator from lanes.write
    snapshot: Snapshot
    controls: dict
    expected: dict  # lane values once written


class DDSPInstrument(ControlSurface):
    def __init__(self, c_instance):
        ControlSurface.__init__(self, c_instance)
        self._closed = False
        self.settings = config.load(os.path.dirname(os.path.abspath(__file__)), self._log)
        s = self.settings
        timing = protocol.Timing(connect_timeout=s.connect_timeout, lost_after=s.lost_after)
        self.link = EngineLink(s.host, s.port, timing, self._log)
        self.token = "%08x" % random.getrandbits(32)
        self.tracks = []  # TrackEntry for every MIDI track with a DDSP Expression rack
        self.states = []  # ClipState
        self.jobs = deque()  # LaneJob
        self._next_refresh = 0.0
        self._scan_index = 0
        self._last_progress = 0.0
        self._log("loaded; engine at %s:%d, default preset %r" % (s.host, s.port, s.preset))
        self.link.bridge.hello(listener=self._on_hello)
        self.schedule_message(1, self._tick)

    # ------------------------------------------------------------------------------------------------ messages

    def _log(self, text: str) -> None:
        self.log_message("DDSP Instrument: " + text)

    def _say(self, text: str) -> None:
        """To Live's log and its status bar."""
        self._log(text)
        self.show_message("DDSP: " + text)

    def _engine_hint(self, code: str, message: str) -> str:
        s = self.settings
        if code == protocol.NO_ENGINE:
            return ("no engine answered at %s:%d within %g s: start it with `python -m engine serve` (or fix host/port "
                    "in the script's config.json)" % (s.host, s.port, s.connect_timeout))
        if code == protocol.ENGINE_LOST:
            return "the engine at %s:%d stopped answering (closed or restarted?): render again" % (s.host, s.port)
        return "%s (%s)" % (message, code)

    def _on_hello(self, request, event: str) -> None:
        if event == "done":
            self._log("engine %s (id %s) answers at %s:%d" % (request.result["engine_version"],
                      request.result["engine_id"], self.settings.host, self.settings.port))
        elif event == "failed":
            self._say(self._engine_hint(*request.error))

    # ------------------------------------------------------------------------------------------------ the tick

    def _tick(self) -> None:
        if self._closed:
            return
        try:
            now = time.monotonic()
            self.link.receive(now)
            if now >= self._next_refresh:
                self._next_refresh = now + REFRESH_EVERY
                self._refresh()
            self._buttons(now)
            self._scan(now)
            self._start_due(now)
            self._write_lanes()
            self.link.send(now)
        except Exception:
            self._log("error in tick:\n" + traceback.format_exc())
        self.schedule_message(1, self._tick)

    def disconnect(self) -> None:
        self._closed = True
        self.link.close()
        ControlSurface.disconnect(self)

    # ------------------------------------------------------------------------------------------------ tracks, clips

    def _refresh(self) -> None:
        entries = []
        for track in self.song().tracks:
            if not track.has_midi_input:
                continue
            rack = lanes.find_rack(track)
            if rack is None:
                continue
            old = next((e for e in self.tracks if e.track == track), None)
            if old is None and rack.missing:
                self._log("track %r: the DDSP Expression rack has no macro named %s"
                          % (track.name, ", ".join(repr(m) for m in rack.missing)))
            entries.append(TrackEntry(track, rack, old.following if old else False))
        self.tracks = entries
        self.states = [s for s in self.states if any(e.track == s.track for e in entries)]
        for entry in entries:
            if entry.following:
                self._states_of(entry.track)

    def _entry(self, track):
        return next((e for e in self.tracks if e.track == track), None)

    def _states_of(self, track) -> list:
        """ClipStates for the track's MIDI clips (Session slots, then Arrangement), creating and forgetting them."""
        found = []
        name = track.name
        located = [(i, slot.clip) for i, slot in enumerate(track.clip_slots) if slot.has_clip]
        located += [(None, clip) for clip in track.arrangement_clips]
        for slot, clip in located:
            if not clip.is_midi_clip:
                continue
            state = next((s for s in self.states if s.clip == clip), None)
            if state is None:
                key = base = clips.position_key(name, slot, clip)
                n = 2
                while any(s.key == key for s in self.states):
                    key, n = "%s#%d" % (base, n), n + 1
                state = ClipState(key, self.token)
                self.states.append(state)
            state.clip, state.track, state.slot = clip, track, slot
            found.append(state)
        self.states = [s for s in self.states if not s.track == track or any(s is f for f in found)]
        return found

    def _snapshot(self, state: ClipState, rack: lanes.Rack) -> Snapshot:
        clip = state.clip
        win = clips.window(clip)
        notes = clips.read(clip, win)
        arrangement = clip.is_arrangement_clip
        plan = [] if arrangement else lanes.step_plan([n.clip_time for n in notes], win.lane_end)
        values = lanes.read(clip, rack, plan) if plan else None
        tempo = self.song().tempo
        start = clip.start_time if arrangement else 0.0
        fingerprint = (tempo, start, win, tuple(notes), tuple(sorted(values.items())) if values else None)
        return Snapshot(win, notes, plan, values, tempo, start, fingerprint)

    # ------------------------------------------------------------------------------------------------ triggers

    def _buttons(self, now: float) -> None:
        for entry in self.tracks:
            rack = entry.rack
            if lanes.is_on(rack.render):
                rack.render.value = rack.render.min
                self._render_now(entry, now)
            following = lanes.is_on(rack.follow)
            if following and not entry.following:
                self._say("following %r: its clips re-render after each edit" % entry.track.name)
                self._states_of(entry.track)
            entry.following = following

    def _render_now(self, entry: TrackEntry, now: float) -> None:
        states = self._states_of(entry.track)
        detail = self.song().view.detail_clip
        chosen = [s for s in states if detail is not None and s.clip == detail] or states
        if not chosen:
            self._say("track %r has no MIDI clip to render" % entry.track.name)
        for state in chosen:
            state.due = now

    def _scan(self, now: float) -> None:
        """Follow mode: fingerprint a few followed clips; an edit makes the clip due after the debounce time."""
        followed = [s for s in self.states if not s.writing and any(e.following and e.track == s.track
                                                                     for e in self.tracks)]
        for _ in range(min(self.settings.scan_clips_per_tick, len(followed))):
            state = followed[self._scan_index % len(followed)]
            self._scan_index += 1
            entry = self._entry(state.track)
            try:
                fingerprint = self._snapshot(state, entry.rack).fingerprint
            except Exception as error:  # the clip was deleted or changed type under us
                self._log("clip %s dropped: %s" % (state.key, error))
                self.states = [s for s in self.states if s is not state]
                continue
            if fingerprint != state.seen:
                state.seen = fingerprint
                pending = state.sent.fingerprint if state.session is not None else None
                if fingerprint not in (state.rendered, pending):
                    state.due = now + self.settings.debounce_seconds

    # ------------------------------------------------------------------------------------------------ renders

    def _start_due(self, now: float) -> None:
        for state in list(self.states):
            if state.due is not None and now >= state.due and not state.writing:
                state.due = None
                try:
                    self._start(state)
                except Exception as error:
                    self._say("cannot render %s: %s" % (state.label, error))

    def _start(self, state: ClipState) -> None:
        entry = self._entry(state.track)
        if entry is None:
            return
        snap = self._snapshot(state, entry.rack)
        name = state.clip.name or "clip"
        state.label = repr(name)
        state.seen = snap.fingerprint
        if not snap.notes:
            state.rendered = snap.fingerprint
            self._say("%r has no notes to render" % name)
            return
        s = self.settings
        chosen = expression.choose(snap.notes, snap.lanes, state.memos)
        notes = clips.request_notes(snap.notes, snap.tempo, chosen)
        length = 0.0 if s.tail else snap.window.span * 60.0 / snap.tempo
        preset = entry.rack.preset or s.preset
        state.sent = snap
        state.session = self.link.bridge.render(
            state.engine_id, preset, notes, s.sample_rate, length, s.seed,
            listener=lambda request, event: self._on_render_event(state, request, event))
        self._say("rendering %r (%d notes, preset %s)" % (name, len(notes), preset))

    def _on_render_event(self, state: ClipState, request, event: str) -> None:
        try:
            self._render_event(state, request, event)
        except Exception:
            self._log("error handling %s of %s:\n%s" % (event, state.key, traceback.format_exc()))

    def _render_event(self, state: ClipState, request, event: str) -> None:
        current = request is state.session
        if event == "failed":
            code, message = request.error
            if code == protocol.SUPERSEDED or not current:
                return
            state.session = None
            if code == protocol.BUSY:
                self._log("the engine is busy; sending %s again in %g s" % (state.label, BUSY_RETRY))
                state.due = time.monotonic() + BUSY_RETRY
                return
            self._say("render of %s failed: %s" % (state.label, self._engine_hint(code, message)))
        elif not current:
            return
        elif event == "warning":
            self._log("engine warning for %s: %s" % (state.label, request.warnings[-1]))
        elif event in ("queued", "progress"):
            now = time.monotonic()
            if now - self._last_progress >= PROGRESS_EVERY:
                self._last_progress = now
                self.show_message("DDSP: rendering %s %d%%" % (state.label, int(100 * request.progress)))
        elif event == "done":
            state.session = None
            self._finish(state, request.result)

    def _finish(self, state: ClipState, result) -> None:
        snap = state.sent
        name = state.clip.name or "clip"
        try:
            placement.place(self.song(), state.track, state.slot, snap.start, result.path, name, state.tag)
        except Exception as error:  # PlacementError, or Live refusing (frozen track, unreadable file, ...)
            self._say("rendered %r but could not place it: %s (file: %s)" % (name, error, result.path))
            return
        self._say("placed %r (%s, %d notes re-rendered, %.2f s)" % (name, result.mode, len(result.rerendered),
                                                                   result.render_seconds))
        entry = self._entry(state.track)
        if not snap.plan or entry is None:
            state.memos = expression.remember(snap.notes, result.controls, None)
            state.rendered = snap.fingerprint
            return
        now = self._snapshot(state, entry.rack)
        if now.fingerprint != snap.fingerprint:  # edited while rendering: leave the lanes to the user's edit
            state.memos = expression.remember(snap.notes, result.controls, snap.lanes)
            state.rendered = snap.fingerprint
            return
        updates = expression.lane_updates(snap.notes, result.controls, snap.lanes, snap.plan, state.memos)
        present = [param is not None for param in entry.rack.controls]  # a rack may lack some macros
        updates = {start: tuple(v if ok else None for v, ok in zip(row, present)) for start, row in updates.items()}
        updates = {start: row for start, row in updates.items() if any(v is not None for v in row)}
        expected = {start: tuple(u if u is not None else before for u, before in
                                 zip(updates.get(start, (None,) * 6), (snap.lanes or {}).get(start, (None,) * 6)))
                    for start, _ in snap.plan}
        if not updates:
            state.memos = expression.remember(snap.notes, result.controls, expected)
            state.rendered = snap.fingerprint
            return
        state.writing = True
        self.jobs.append(LaneJob(state, lanes.write(state.clip, entry.rack, snap.plan, updates), snap,
                                 result.controls, expected))

    def _write_lanes(self) -> None:
        budget = self.settings.lane_steps_per_tick
        while self.jobs and budget > 0:
            job = self.jobs[0]
            try:
                next(job.steps)
                budget -= 1
                continue
            except StopIteration:
                self._lanes_written(job)
            except Exception:
                job.state.writing = False
                self._log("writing lanes of %s failed:\n%s" % (job.state.key, traceback.format_exc()))
            self.jobs.popleft()

    def _lanes_written(self, job: LaneJob) -> None:
        state, snap = job.state, job.snapshot
        state.writing = False
        state.memos = expression.remember(snap.notes, job.controls, job.expected)
        entry = self._entry(state.track)
        if entry is None:
            return
        after = self._snapshot(state, entry.rack)
        as_written = after.notes == snap.notes and after.lanes is not None and all(
            expression.close(after.lanes.get(start), values) for start, values in job.expected.items())
        state.rendered = after.fingerprint if as_written else snap.fingerprint
        state.seen = after.fingerprint if as_written else state.seen
