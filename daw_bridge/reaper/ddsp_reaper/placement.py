"""A finished render into the project: the file into the media folder, the audio item on the companion track,
the points on the lanes, the item's memory of what was sent."""
from __future__ import annotations

import os
import shutil

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p

from . import memory
from .items import ClipRequest
from .lanes import Lanes
from .project import is_render_track, item_string, track_items, track_label, track_string, tracks, valid
from .settings import BUILD_PEAKS, COMPANION_OF, RENDER_OF, Skip


def companion_track(track):
    """The render track of a MIDI track: found by the GUID it keeps, else created right below it."""
    guid = track_string(track, "GUID")
    for candidate in tracks():
        if track_string(candidate, COMPANION_OF) == guid:
            return candidate
    index = int(RPR_GetMediaTrackInfo_Value(track, "IP_TRACKNUMBER"))  # 1-based: the index below it
    RPR_InsertTrackAtIndex(index, True)
    companion = RPR_GetTrack(0, index)
    track_string(companion, "P_NAME", f"{track_label(track)} (render)")
    track_string(companion, COMPANION_OF, guid)
    return companion


def find_render_item(midi_guid: str, render_guid: str | None):
    """The render of this MIDI item: the item whose GUID the MIDI item remembers, else one that names the MIDI item
    as its source. Only render tracks are searched."""
    fallback = None
    for track in tracks():
        if not is_render_track(track):
            continue
        for item in track_items(track):
            if render_guid and item_string(item, "GUID") == render_guid:
                return item
            if fallback is None and item_string(item, RENDER_OF) == midi_guid:
                fallback = item
    return fallback


def copy_into_project(path: str, folder_name: str) -> str:
    """Put an engine render into the project's media folder (the engine deletes its own after some days): a hard
    link when both are on one disk (instant), else a copy; atomically either way."""
    folder = os.path.join(RPR_GetProjectPath("", 4096)[0], folder_name)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, os.path.basename(path))
    partial = target + ".part"
    if os.path.exists(partial):
        os.remove(partial)
    try:
        os.link(path, partial)
    except OSError:
        shutil.copyfile(path, partial)
    os.replace(partial, target)
    return target


def place_render(request: ClipRequest, path: str, old_guid: str | None):
    """Put the file on the companion track at the item's position and length: the item's previous render gets the
    new source (its fades, volume and name stay), or a new item is made. Returns the render item."""
    companion = companion_track(request.track)
    item = find_render_item(request.guid, old_guid)
    source = RPR_PCM_Source_CreateFromFile(path)
    if not valid(source):
        raise Skip(f"REAPER could not open the rendered file {path}")
    if item is None:
        item = RPR_AddMediaItemToTrack(companion)
        take = RPR_AddTakeToMediaItem(item)
        item_string(item, RENDER_OF, request.guid)
        for name in ("B_LOOPSRC", "D_FADEINLEN", "D_FADEOUTLEN"):  # no project-default fades on the render
            RPR_SetMediaItemInfo_Value(item, name, 0)
        old_source = None
    else:
        if RPR_GetMediaItem_Track(item) != companion:
            RPR_MoveMediaItemToTrack(item, companion)
        take = RPR_GetActiveTake(item)
        old_source = RPR_GetMediaItemTake_Source(take)
    RPR_SetMediaItemTake_Source(take, source)
    if valid(old_source):
        RPR_PCM_Source_Destroy(old_source)
    RPR_GetSetMediaItemTakeInfo_String(take, "P_NAME", f"DDSP {request.preset}", True)
    RPR_SetMediaItemInfo_Value(item, "D_POSITION", request.position)
    RPR_SetMediaItemInfo_Value(item, "D_LENGTH", request.length)
    return item


def lane_points(request: ClipRequest, controls: dict) -> tuple[list, dict]:
    """One point per distinct onset time: notes starting together (a chord) share a point, which gets the values
    of its highest note. Returns the points and, per note id, the values its point got."""
    points, written, by_time = [], {}, {}
    for note in sorted(request.notes, key=lambda n: (n["time"], -n["pitch"])):
        if note["id"] not in controls:
            continue  # the engine dropped it (a duplicate it repaired)
        key = round(note["time"], 6)
        if key not in by_time:
            by_time[key] = tuple(controls[note["id"]])
            points.append((note["time"], by_time[key]))
        written[note["id"]] = by_time[key]
    return points, written


def apply_result(request: ClipRequest, outcome: p.RenderOutcome, config: dict) -> str:
    """The render is ready and its item is in the active project (RenderJob.place_when): copy it into the project,
    place it, write the lanes, remember what was sent. Returns a one-line summary. If the item changed while it
    rendered, the audio is placed but lanes and memory are left for the next render (follow mode does it)."""
    item = request.item
    if not RPR_ValidatePtr2(0, item, "MediaItem*"):
        raise Skip("the item was deleted while it rendered")
    path = copy_into_project(outcome.path, config["render_folder"])
    current = ClipRequest(item, config, regenerate=request.regenerate, project=request.project)
    changed = current.signature != request.signature
    RPR_Undo_BeginBlock2(0)
    RPR_PreventUIRefresh(1)
    try:
        state = dict(request.state)
        render_item = place_render(request, path, state.get("render"))
        state.update(render=item_string(render_item, "GUID"), file=path, clip=request.clip_id, item=request.guid)
        if not changed:
            points, written = lane_points(request, outcome.controls)
            lanes = Lanes(request.track, create=True, sample_rate=request.sample_rate)
            old_times = [m["t"] for m in state.get("notes", {}).values()]
            lanes.write(points, request.position, request.position + request.length, old_times)
            notes = {}
            for note in request.notes:
                if note["id"] not in written:
                    continue
                kept = {"c": list(outcome.controls[note["id"]]), "t": note["time"]}
                if list(written[note["id"]]) != kept["c"]:
                    kept["l"] = list(written[note["id"]])
                notes[note["id"]] = kept
            state.update(notes=notes, track=track_string(request.track, "GUID"))
        # the signature of what the next render would send now; "stale" makes follow mode render it again
        state["sig"] = "stale" if changed else ClipRequest(item, config, project=request.project,
                                                           state=state).signature
        memory.save(item, state, path)
    finally:
        RPR_PreventUIRefresh(-1)
        RPR_Undo_EndBlock2(0, f"DDSP: render {request.label}", -1)
    memory.note_rendered(item)
    RPR_UpdateArrange()
    RPR_Main_OnCommand(BUILD_PEAKS, 0)
    summary = (f"rendered {request.label}: {len(request.notes)} notes, {request.length:.2f} s, preset "
               f"'{request.preset}', {outcome.mode} ({len(outcome.rerendered)} re-rendered) in "
               f"{outcome.render_seconds:.2f} s")
    if changed:
        summary += "; the item changed while it rendered, so its lanes were not rewritten: render it again"
    return summary
