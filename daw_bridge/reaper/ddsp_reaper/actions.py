"""The actions' entry points (each `DDSP - *.py` script calls one with its globals) and the one-shot actions:
render or regenerate the selected items, choose the preset of the selected tracks."""
from __future__ import annotations

import time

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p

from .follow import Follower
from .items import ClipRequest, check_overlaps
from .loop import RenderJob, Runner
from .placement import apply_result
from .project import (current_project, is_render_track, track_bend_range, track_label, track_preset,
                      track_string)
from .settings import MAX_IN_FLIGHT, SECTION, TRACK_BEND_RANGE, TRACK_MPE, TRACK_PRESET, Skip, say


class RenderAction(Runner):
    """Render (or regenerate) the selected MIDI items."""

    def __init__(self, context: dict, regenerate: bool):
        super().__init__(context, "reaper-render")
        self.regenerate = regenerate
        self.jobs: list[RenderJob] = []
        self.failed = 0

    def prepare(self) -> bool:
        items = [RPR_GetSelectedMediaItem(0, i) for i in range(RPR_CountSelectedMediaItems(0))]
        if not items:
            say("select one or more MIDI items first")
            return False
        project = current_project()
        for item in items:
            try:
                request = ClipRequest(item, self.config, self.regenerate, project=project)
                check_overlaps(item, request.track)
            except Skip as why:
                position = RPR_GetMediaItemInfo_Value(item, "D_POSITION")
                say(f"skipped the item at {position:.3f} s on track "
                    f"'{track_label(RPR_GetMediaItem_Track(item))}': {why}")
                continue
            self.jobs.append(RenderJob(request))
        if not self.jobs:
            return False
        say(f"rendering {len(self.jobs)} item(s) with the engine at {self.config['host']}:{self.config['port']}...")
        return True

    def step(self, now: float) -> bool:
        engine = self.engine
        engine.pump(now)
        if engine.error:
            say(engine.error)
            return False
        if engine.ready:
            in_flight = sum(1 for j in self.jobs if j.session is not None and not j.done)
            for job in self.jobs:
                if job.session is None and in_flight < MAX_IN_FLIGHT:
                    job.submit(engine)
                    in_flight += 1
        for job in self.jobs:
            if job.session is None or job.done or not job.session.finished:
                continue
            where = "now" if job.session.state == "failed" else job.place_when()
            if where == "later":  # its project is another tab: placed when it is the active one again
                continue
            job.done = True
            self._finished(job, where)
        return not all(job.done for job in self.jobs)

    def _finished(self, job: RenderJob, where: str) -> None:
        session = job.session
        if session.state == "failed":
            self.failed += 1
            code, message = session.error
            say(f"{job.request.label}: render failed: {code}: {message}")
            return
        if where == "gone":
            self.failed += 1
            say(f"{job.request.label}: the item was deleted (or its project closed) while it rendered")
            return
        try:
            say(apply_result(job.request, session.result, self.config))
        except Skip as why:
            self.failed += 1
            say(f"{job.request.label}: {why}")
        except OSError as error:
            self.failed += 1
            say(f"{job.request.label}: could not copy the render into the project: {error}")


def render_selected(context: dict, regenerate: bool = False) -> None:
    action = RenderAction(context, regenerate)
    if action.prepare():
        action.start()
    else:
        action.close()


def regenerate_selected(context: dict) -> None:
    render_selected(context, regenerate=True)


def follow_toggle(context: dict) -> None:
    """Start follow mode, or stop it when it is running (its loop beats every 0.5 s in the ext state)."""
    state = RPR_GetExtState(SECTION, "follow")
    if state.startswith("running:"):
        try:
            alive = time.time() - float(state.split(":", 1)[1]) < 3.0
        except ValueError:
            alive = False
        if alive:
            RPR_SetExtState(SECTION, "follow", "stop", False)
            say("stopping follow mode...")
            return
    follower = Follower(context)
    RPR_SetExtState(SECTION, "follow", f"running:{time.time():.3f}", False)
    say("follow mode on: rendered items re-render when their notes, lanes, preset or place change "
        "(run this action again to stop)")
    follower.start()


class PresetChooser(Runner):
    """List the engine's presets, ask for one (and the tracks' MPE zone and pitch-bend range), store them on the
    selected tracks."""

    def __init__(self, context: dict, targets: list):
        super().__init__(context, "reaper-presets")
        self.targets = targets
        self.query: p.PresetsQuery | None = None

    def step(self, now: float) -> bool:
        self.engine.pump(now)
        if self.engine.error:
            say(self.engine.error)
            return False
        if not self.engine.ready:
            return True
        if self.query is None:
            self.query = self.engine.bridge.presets()
            return True
        if self.query.state == "failed":
            say(f"could not list the presets: {': '.join(self.query.error)}")
            return False
        if self.query.state != "done":
            return True
        self.ask(self.query.result)
        return False

    def ask(self, presets: list[dict]) -> None:
        names = [preset["name"] for preset in presets]
        lines = [f"  {i + 1}. {preset['name']} ({preset['kind']}"
                 f"{', ' + preset['instrument'] if preset.get('instrument') else ''})"
                 f"{': ' + preset['description'] if preset.get('description') else ''}"
                 for i, preset in enumerate(presets)]
        say("presets of the engine:\n" + "\n".join(lines))
        first = self.targets[0]
        current = ",".join([track_preset(first), track_string(first, TRACK_MPE) or "off",
                            "%g" % track_bend_range(first)])
        ok, _, _, _, answer, _ = RPR_GetUserInputs(
            "DDSP preset", 3, "Preset (name or number):,MPE zone (off / lower / upper):,Pitch-bend range (semitones):,"
            "extrawidth=120", current, 512)
        if not ok:
            return
        fields = [field.strip() for field in answer.split(",")]
        answer = fields[0]
        if answer.isdigit() and 1 <= int(answer) <= len(names):
            answer = names[int(answer) - 1]
        if answer not in names:
            say(f"no preset named '{answer}'; the engine has: {', '.join(names)}")
            return
        zone = fields[1].lower() if len(fields) > 1 and fields[1] else "off"
        if zone.split()[0] not in ("off", "lower", "upper"):
            say(f"MPE zone '{zone}' is not off, lower or upper (optionally with a member-channel count)")
            return
        try:
            bend_range = float(fields[2]) if len(fields) > 2 and fields[2] else track_bend_range(first)
        except ValueError:
            bend_range = -1.0
        if not 0.0 <= bend_range <= 96.0:
            say(f"pitch-bend range '{fields[2]}' is not a number of semitones from 0 to 96")
            return
        for track in self.targets:
            track_string(track, TRACK_PRESET, answer)
            track_string(track, TRACK_MPE, "" if zone == "off" else zone)
            track_string(track, TRACK_BEND_RANGE, "%g" % bend_range)
        say(f"preset '{answer}' set for {', '.join(repr(track_label(t)) for t in self.targets)} (kept in the "
            f"project; render again to hear it)")


def choose_preset(context: dict) -> None:
    targets = [RPR_GetSelectedTrack(0, i) for i in range(RPR_CountSelectedTracks(0))]
    if not targets:
        targets = [RPR_GetMediaItem_Track(RPR_GetSelectedMediaItem(0, i))
                   for i in range(RPR_CountSelectedMediaItems(0))]
    unique = []
    for track in targets:
        if track not in unique and not is_render_track(track):
            unique.append(track)
    if not unique:
        say("select the MIDI track(s) (or MIDI items on them) to choose a preset for")
        return
    PresetChooser(context, unique).start()
