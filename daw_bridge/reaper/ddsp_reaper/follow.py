"""Follow mode: re-render a rendered item once its render request changed and stayed unchanged a moment."""
from __future__ import annotations

import hashlib
import time

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p

from .items import ClipRequest, check_overlaps
from .lanes import lanes_fingerprint
from .loop import RenderJob, Runner
from .placement import apply_result
from .project import (current_project, is_render_track, item_span, item_string, load_state, midi_take,
                      project_sample_rate, track_items, track_preset, tracks)
from .settings import ITEM_STATE, SECTION, Skip, say


def tempo_fingerprint() -> str:
    """The tempo map, in a few API calls."""
    markers = [RPR_GetTempoTimeSigMarker(0, i, 0.0, 0, 0.0, 0.0, 0, 0, False)[2:]
               for i in range(RPR_CountTempoTimeSigMarkers(0))]
    return repr(markers)


def item_fingerprint(item, take, state_text: str, lanes: str, tempo: str, rate: int) -> str:
    """Changes whenever the item's render request may have changed (its notes, place, take offset and rate,
    preset, the project rate, the tempo map, the lanes of its track, what it remembers); a dozen API calls, where
    building the request costs about ten per note."""
    track = RPR_GetMediaItem_Track(item)
    parts = [RPR_MIDI_GetHash(take, True, "", 64)[3], repr(item_span(item)),
             repr(RPR_GetMediaItemTakeInfo_Value(take, "D_STARTOFFS")),
             repr(RPR_GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")), track_preset(track), str(rate), lanes, tempo,
             hashlib.sha1(state_text.encode()).hexdigest()]
    return "|".join(parts)


class Follower(Runner):
    """Follow edits: re-render every already rendered item of the current project whose render request changed
    (notes, lanes at its notes, preset, position, length, tempo), once it stayed unchanged for `debounce` seconds.
    Stops when the toggle action runs again (ext state "ddsp"/"follow" = "stop") or REAPER terminates it."""

    def __init__(self, context: dict):
        super().__init__(context, "reaper-follow")
        self.project = None
        self.state_count = None
        self.last_scan = -1e9
        self.last_full = -1e9
        self.last_beat = -1e9
        self.pending: dict[str, tuple[str, float, ClipRequest, int]] = {}  # guid -> (signature, since, request,
        # the project's state change count when the request was read)
        self.prints: dict[str, str] = {}  # guid -> item_fingerprint at its last full check
        self.jobs: dict[str, RenderJob] = {}  # guid -> the latest job started
        self.warned: dict[str, str] = {}  # guid -> last message shown (not repeated)

    def step(self, now: float) -> bool:
        if RPR_GetExtState(SECTION, "follow") == "stop":
            say("follow mode stopped")
            return False
        if now - self.last_beat >= 0.5:
            self.last_beat = now
            RPR_SetExtState(SECTION, "follow", f"running:{time.time():.3f}", False)
        self.engine.pump(now)
        if self.engine.error:
            say(f"follow mode stopped: {self.engine.error}")
            return False
        if now - self.last_scan >= float(self.config["scan_interval"]):
            self.last_scan = now
            self._scan(now)
        self._start_due(now)
        self._collect()
        return True

    def finish(self) -> None:
        if RPR_GetExtState(SECTION, "follow") != "":
            RPR_SetExtState(SECTION, "follow", "", False)

    def _scan(self, now: float) -> None:
        """After a project change (or every `full_scan_interval` s): fingerprint every rendered item cheaply, and
        rebuild the request only of those whose fingerprint changed."""
        project = current_project()
        count = RPR_GetProjectStateChangeCount(0)
        if project != self.project:
            self.project, self.pending, self.jobs, self.prints = project, {}, {}, {}
        elif count == self.state_count and now - self.last_full < float(self.config["full_scan_interval"]):
            return
        self.state_count, self.last_full = count, now
        tempo, rate = tempo_fingerprint(), project_sample_rate()
        for track in tracks():
            if is_render_track(track):
                continue
            lanes = None
            for item in track_items(track):
                take = midi_take(item)
                text = item_string(item, ITEM_STATE) if take is not None else ""
                if not text:
                    continue
                lanes = lanes if lanes is not None else lanes_fingerprint(track)
                guid = item_string(item, "GUID")
                fingerprint = item_fingerprint(item, take, text, lanes, tempo, rate)
                if self.prints.get(guid) == fingerprint:
                    continue
                self.prints[guid] = fingerprint
                state = load_state(item)
                if state.get("sig"):
                    self._check(item, state, now)

    def _check(self, item, state: dict, now: float) -> None:
        guid = item_string(item, "GUID")
        try:
            request = ClipRequest(item, self.config)
            check_overlaps(item, request.track)
        except Skip as why:
            if self.warned.get(guid) != str(why):
                self.warned[guid] = str(why)
                say(f"follow: not re-rendering the item at {item_span(item)[0]:.3f} s: {why}")
            self.pending.pop(guid, None)
            return
        self.warned.pop(guid, None)
        if request.signature == state["sig"]:
            self.pending.pop(guid, None)
        elif guid not in self.pending or self.pending[guid][0] != request.signature:
            self.pending[guid] = (request.signature, now, request, self.state_count)

    def _start_due(self, now: float) -> None:
        if not self.engine.ready:
            return
        for guid, (signature, since, request, count) in list(self.pending.items()):
            if now - since < float(self.config["debounce"]):
                continue
            del self.pending[guid]
            if count != RPR_GetProjectStateChangeCount(0):  # something changed since: read it again
                if not RPR_ValidatePtr2(0, request.item, "MediaItem*"):
                    continue
                try:
                    request = ClipRequest(request.item, self.config)
                except Skip:
                    continue
                if request.signature != signature:
                    self.pending[guid] = (request.signature, now, request, RPR_GetProjectStateChangeCount(0))
                    continue
            job = RenderJob(request)
            job.submit(self.engine)
            self.jobs[guid] = job
            say(f"follow: re-rendering {request.label}")

    def _collect(self) -> None:
        for guid, job in list(self.jobs.items()):
            if not job.session.finished:
                continue
            del self.jobs[guid]
            session = job.session
            if session.state == "failed":
                code, message = session.error
                if code != p.SUPERSEDED:
                    say(f"follow: {job.request.label}: render failed: {code}: {message}")
                continue
            try:
                say("follow: " + apply_result(job.request, session.result, self.config))
            except (Skip, OSError) as why:
                say(f"follow: {job.request.label}: {why}")
