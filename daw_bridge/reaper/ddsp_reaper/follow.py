"""Follow mode: re-render a rendered item once its render request changed and stayed unchanged a moment."""
from __future__ import annotations

import time

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p

from . import memory
from .items import ClipRequest, check_overlaps
from .loop import RenderJob, Runner
from .placement import apply_result
from .project import (current_project, item_span, item_string, midi_take, project_sample_rate,
                      project_sample_rate_numbers, track_preset)
from .settings import RENDERED, SECTION, Skip, say
from .watch import Followed, LaneWatch, item_numbers, tempo_numbers


class Follower(Runner):
    """Follow edits: re-render every already rendered item of the active project whose render request changed
    (notes, lanes at its notes, preset, position, length, tempo), once it stayed unchanged for `debounce` seconds.
    Stops when the toggle action runs again (ext state "ddsp"/"follow" = "stop") or REAPER terminates it.

    Its checks cost REAPER's UI thread little (watch.py): while REAPER reports no change, numbers only."""

    def __init__(self, context: dict):
        super().__init__(context, "reaper-follow")
        self.project = None
        self.state_count = None
        self.seen = None  # the RENDERED ext state at the last look
        self.item_count = None
        self.tempo = self.rate = None
        self.folder = None  # the project's render folder (memory files), read when first needed after a change
        self.last_scan = self.last_full = self.last_beat = -1e9
        self.followed: dict[str, Followed] = {}  # item pointer -> what follow mode knows of it
        self.watches: dict[str, LaneWatch] = {}  # track pointer -> its lanes
        self.pending: dict[str, tuple[str, float, ClipRequest, int]] = {}  # guid -> (signature, since, request,
        # the project's state change count when the request was read)
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

    # ---- finding what changed

    def _scan(self, now: float) -> None:
        """Look closer when REAPER reports a change (its state change count, a render noted); every
        `full_scan_interval` s check the numbers anyway (a change that made no undo point)."""
        count = RPR_GetProjectStateChangeCount(0)
        seen = RPR_GetExtState(SECTION, RENDERED)
        if count == self.state_count and seen == self.seen:
            if now - self.last_full < float(self.config["full_scan_interval"]):
                return
            self.last_full = now
            if not self._numbers_changed():
                return
        self.state_count, self.last_full = count, now
        self._refresh(now, seen)

    def _numbers_changed(self) -> bool:
        if RPR_CountMediaItems(0) != self.item_count or tempo_numbers() != self.tempo or \
                project_sample_rate_numbers() != self.rate:
            return True
        for followed in self.followed.values():
            if not RPR_ValidatePtr2(0, followed.item, "MediaItem*") or \
                    item_numbers(followed.item, followed.take) != followed.numbers:
                return True
        return any(watch.counts() != watch.counted for watch in self.watches.values())

    def _refresh(self, now: float, seen: str) -> None:
        """Fingerprint every followed item (one string read each, seven per track) and look closer at those
        whose fingerprint changed."""
        project = current_project()
        if project != self.project:  # another project tab: its own items (renders in flight are kept)
            self.project, self.followed, self.watches, self.pending, self.seen = project, {}, {}, {}, None
        self.folder = None
        items = RPR_CountMediaItems(0)
        self._find_rendered(seen, items)
        self.item_count, self.seen = items, seen
        self.tempo, self.rate = tempo_numbers(), project_sample_rate_numbers()
        rate = project_sample_rate()
        tracks: dict[str, tuple[str, str]] = {}  # track -> (preset, lanes fingerprint)
        for followed in list(self.followed.values()):
            take = midi_take(followed.item) if RPR_ValidatePtr2(0, followed.item, "MediaItem*") else None
            if take is None:
                del self.followed[followed.item]
                continue
            followed.take, followed.numbers = take, item_numbers(followed.item, take)
            track = followed.numbers[0]
            if track not in tracks:
                watch = self.watches.setdefault(track, LaneWatch(track))
                tracks[track] = (track_preset(track), watch.fingerprint())
            fingerprint = "|".join([RPR_MIDI_GetHash(take, False, "", 64)[3], repr(followed.numbers), *tracks[track],
                                    repr(self.tempo), str(rate), followed.name])
            if fingerprint != followed.print:
                followed.print = fingerprint
                self._check(followed, now)

    def _find_rendered(self, seen: str, items: int) -> None:
        """Which items were rendered: read again the ones noted in the RENDERED ext state since the last look, or
        every MIDI item (one string read each) when items were added or removed, or more were noted."""
        count, noted = memory.rendered(seen)
        before, _ = memory.rendered(self.seen) if self.seen is not None else (None, [])
        if before is None or items != self.item_count or count - before > len(noted):
            for index in range(items):
                self._follow(RPR_GetMediaItem(0, index))
        else:
            for item in noted[:count - before]:
                self._follow(item)

    def _follow(self, item) -> Followed | None:
        """Start (or stop) following an item, by what it remembers."""
        take = midi_take(item)
        name = memory.memory_name(item) if take is not None else ""
        known = self.followed.get(item)
        if known is not None and known.name == name:
            return known
        guid = known.guid if known is not None else (item_string(item, "GUID") if name else "")
        if name and self.folder is None:
            self.folder = memory.render_folder(self.config)
        state = memory.load(item, self.folder, guid, name) if name else {}
        if not state.get("sig"):
            self.followed.pop(item, None)
            return None
        self.followed[item] = Followed(item, take, guid, name, state)
        return self.followed[item]

    def _check(self, followed: Followed, now: float) -> None:
        """The item's fingerprint changed: rebuild its request; pending when it differs from its last render's."""
        followed = self._follow(followed.item)  # what it remembers may have changed (undo)
        if followed is None:
            return
        guid = followed.guid
        try:
            request = ClipRequest(followed.item, self.config, project=self.project, state=followed.state)
            check_overlaps(followed.item, request.track)
        except Skip as why:
            if self.warned.get(guid) != str(why):
                self.warned[guid] = str(why)
                say(f"follow: not re-rendering the item at {item_span(followed.item)[0]:.3f} s: {why}")
            self.pending.pop(guid, None)
            return
        self.warned.pop(guid, None)
        if request.signature == followed.state["sig"]:
            self.pending.pop(guid, None)
        elif guid not in self.pending or self.pending[guid][0] != request.signature:
            self.pending[guid] = (request.signature, now, request, self.state_count)

    # ---- rendering

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
                    request = ClipRequest(request.item, self.config, project=self.project)
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
            session = job.session
            if session.state == "failed":
                del self.jobs[guid]
                code, message = session.error
                if code != p.SUPERSEDED:
                    say(f"follow: {job.request.label}: render failed: {code}: {message}")
                continue
            where = job.place_when()
            if where == "later":  # its project is another tab
                continue
            del self.jobs[guid]
            if where == "gone":
                say(f"follow: {job.request.label}: the item was deleted (or its project closed) while it rendered")
                continue
            try:
                say("follow: " + apply_result(job.request, session.result, self.config))
            except (Skip, OSError) as why:
                say(f"follow: {job.request.label}: {why}")
