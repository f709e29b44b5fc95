"""DDSP for REAPER: what the action scripts share (docs/reaper.md).

REAPER runs the action scripts ("DDSP - *.py") with its embedded Python; each adds its own folder to sys.path and
calls one entry point here with its globals (REAPER puts RPR_defer/RPR_atexit there, not in reaper_python):

- `render_selected(context)`: render the selected MIDI items; the audio lands on a companion track
  "<track> (render)" at each item's exact position and length (replacing that item's previous render, never another
  item), and the engine's per-note expression is written as points on six automation lanes (the "DDSP expression"
  JSFX on the MIDI track);
- `regenerate_selected(context)`: the same, forgetting lane edits (the engine generates every note again);
- `follow_toggle(context)`: a background loop that re-renders an already rendered item when its notes, its lanes
  at its notes, its preset or its place change (debounced; the engine re-renders incrementally); run it again to
  stop it;
- `choose_preset(context)`: pick the engine preset of the selected tracks (kept in the project, per track).

Nothing here blocks REAPER: a non-blocking UDP socket is polled from an RPR_defer loop and drives
daw_bridge.protocol's state machines. Standard library + reaper_python + daw_bridge (copied next to this file by
`python -m daw_bridge install reaper`) only.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p

SECTION = "ddsp"  # ext-state section and P_EXT: prefix
CONFIG_FILE = "ddsp_config.json"
# The JSFX by its path under REAPER's Effects folder, without the extension, by its description
JSFX_NAMES = ("JS:ddsp/ddsp_expression.jsfx", "JS:ddsp/ddsp_expression", "JS:DDSP expression")
FX_TAGS = ("js: ddsp expression", "ddsp_expression")  # how its name in an FX chain starts / what it contains
ITEM_STATE = "P_EXT:ddsp_state"  # on a MIDI item: what the last render sent, got and wrote (JSON)
RENDER_OF = "P_EXT:ddsp_render_of"  # on a render item: the GUID of its MIDI item
COMPANION_OF = "P_EXT:ddsp_companion_of"  # on a render track: the GUID of its MIDI track
TRACK_PRESET = "P_EXT:ddsp_preset"
DEFAULT_PRESET = "parametric"
SQUARE = 1  # envelope point shape
EDIT_TOLERANCE = 0.0015  # a lane value further than this from what was written counts as an edit
EVAL_AFTER = 0.0005  # s: lanes are read this long after a note's point (half its length at most)
SAME_TIME = 1e-6  # s
MAX_IN_FLIGHT = 4  # renders uploaded to the engine at once
BUILD_PEAKS = 40047  # action "Peaks: Build any missing peaks"

DEFAULTS = {
    "host": p.DEFAULT_HOST,
    "port": p.DEFAULT_PORT,
    "engine_command": None,  # e.g. ["/path/.venv/bin/python", "-m", "engine", "serve", "--port", "9718"]
    "engine_cwd": None,
    "engine_log": None,  # default: <temp>/ddsp-engine.log
    "connect_timeout": 5.0,  # s without an answer before "no engine"
    "boot_timeout": 90.0,  # s allowed for an engine the script started
    "debounce": 0.6,  # s an item must stay unchanged before follow mode re-renders it
    "scan_interval": 0.25,  # s between follow mode's checks for a changed project
    "full_scan_interval": 2.0,  # s between checks even when REAPER reports no change
    "render_folder": "DDSP renders",  # under the project's media folder
    "seed": 0,
}


class Skip(Exception):
    """An item that cannot be rendered; the message says why in one line."""


def say(text: str) -> None:
    RPR_ShowConsoleMsg(f"DDSP: {text}\n")


# ---------------------------------------------------------------------------------------------------- settings

def script_folder(context: dict) -> str:
    path = context.get("__file__")
    if path:
        return os.path.dirname(os.path.abspath(path))
    return os.path.join(RPR_GetResourcePath(), "Scripts", "ddsp")


def load_config(folder: str) -> dict:
    """ddsp_config.json (written by the installer) over the defaults; a global ext state "ddsp"/"port" or "host"
    (set from any script) wins."""
    config = dict(DEFAULTS)
    path = os.path.join(folder, CONFIG_FILE)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as handle:
                config.update(json.load(handle))
        except (OSError, ValueError) as error:
            say(f"ignoring {path}: {error}")
    for key in ("host", "port"):
        value = RPR_GetExtState(SECTION, key)
        if value:
            config[key] = int(value) if key == "port" else value
    return config


# ---------------------------------------------------------------------------------------------------- REAPER helpers

def valid(pointer) -> bool:
    """REAPER returns NULL pointers as '(Type*)0x0000000000000000'."""
    return bool(pointer) and not str(pointer).endswith("0x0000000000000000")


def item_string(item, name: str, value: str | None = None) -> str:
    if value is None:
        return RPR_GetSetMediaItemInfo_String(item, name, "", False)[3]
    RPR_GetSetMediaItemInfo_String(item, name, value, True)
    return value


def track_string(track, name: str, value: str | None = None) -> str:
    if value is None:
        return RPR_GetSetMediaTrackInfo_String(track, name, "", False)[3]
    RPR_GetSetMediaTrackInfo_String(track, name, value, True)
    return value


def track_label(track) -> str:
    name = track_string(track, "P_NAME")
    return name or f"Track {int(RPR_GetMediaTrackInfo_Value(track, 'IP_TRACKNUMBER'))}"


def tracks():
    return [RPR_GetTrack(0, i) for i in range(RPR_CountTracks(0))]


def track_items(track):
    return [RPR_GetTrackMediaItem(track, i) for i in range(RPR_CountTrackMediaItems(track))]


def is_render_track(track) -> bool:
    return bool(track_string(track, COMPANION_OF))


def midi_take(item):
    take = RPR_GetActiveTake(item)
    return take if valid(take) and RPR_TakeIsMIDI(take) else None


def item_span(item) -> tuple[float, float]:
    position = RPR_GetMediaItemInfo_Value(item, "D_POSITION")
    return position, position + RPR_GetMediaItemInfo_Value(item, "D_LENGTH")


def project_sample_rate() -> int:
    """The project's rate when set (Project settings), else the audio device's, else 48000."""
    if RPR_GetSetProjectInfo(0, "PROJECT_SRATE_USE", 0, False) > 0:
        rate = RPR_GetSetProjectInfo(0, "PROJECT_SRATE", 0, False)
        if rate > 0:
            return int(round(rate))
    ok, _, text, _ = RPR_GetAudioDeviceInfo("SRATE", "", 64)
    try:
        return int(round(float(text))) if ok and text else 48000
    except ValueError:
        return 48000


def project_id() -> str:
    """A random id kept in the project, so clip ids of two projects never collide in the engine's cache."""
    value = RPR_GetProjExtState(0, SECTION, "project_id", "", 64)[4]
    if not value:
        value = os.urandom(6).hex()
        RPR_SetProjExtState(0, SECTION, "project_id", value)
    return value


def current_project() -> str:
    return str(RPR_EnumProjects(-1, "", 512)[0])


def track_preset(track) -> str:
    return track_string(track, TRACK_PRESET) or DEFAULT_PRESET


def load_state(item) -> dict:
    text = item_string(item, ITEM_STATE)
    if not text:
        return {}
    try:
        state = json.loads(text)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def tempo_fingerprint() -> str:
    """The tempo map, in a few API calls."""
    markers = [RPR_GetTempoTimeSigMarker(0, i, 0.0, 0, 0.0, 0.0, 0, 0, False)[2:]
               for i in range(RPR_CountTempoTimeSigMarkers(0))]
    return repr(markers)


def lanes_fingerprint(track) -> str:
    """Every point of the track's six lanes, in six API calls (the envelopes' state chunks)."""
    fx = Lanes.find(track)
    if fx < 0:
        return "none"
    chunks = []
    for k in range(6):
        envelope = RPR_GetFXEnvelope(track, fx, k, False)
        chunks.append(RPR_GetEnvelopeStateChunk(envelope, "", 1024 * 1024, False)[2] if valid(envelope) else "")
    return hashlib.sha1("\n".join(chunks).encode()).hexdigest()


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


# ---------------------------------------------------------------------------------------------------- notes

def read_notes(take, position: float, length: float) -> list[dict]:
    """The notes REAPER plays from this take: unmuted, starting inside the item, cut at its end. Times go through
    REAPER's own PPQ -> project time conversion (tempo map, take offset and rate included). Each note: id (stable
    while pitch and start do not change), pitch, velocity, onset/offset in seconds from the item start (sample 0 of
    the render) and `time`, its project time."""
    count = RPR_MIDI_CountEvts(take, 0, 0, 0)[2]
    notes, seen = [], {}
    for index in range(count):
        ok, _, _, _, muted, start, end, _, pitch, velocity = RPR_MIDI_GetNote(take, index, 0, 0, 0.0, 0.0, 0, 0, 0)
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
                      "offset": offset, "time": t0})
    notes.sort(key=lambda n: (n["onset"], -n["pitch"]))
    return notes


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


# ---------------------------------------------------------------------------------------------------- lanes

class Lanes:
    """The six expression lanes of a track: envelopes of the DDSP expression JSFX's sliders (one per control)."""

    def __init__(self, track, create: bool, sample_rate: int = 48000):
        self.track, self.sample_rate = track, sample_rate
        self.fx = self.find(track)
        if self.fx < 0 and create:
            for name in JSFX_NAMES:
                self.fx = RPR_TrackFX_AddByName(track, name, False, -1)
                if self.fx >= 0:
                    break
            else:
                raise Skip(f"could not add the DDSP expression effect to track '{track_label(track)}': is "
                           f"ddsp_expression.jsfx installed in "
                           f"{os.path.join(RPR_GetResourcePath(), 'Effects', 'ddsp')}? Run "
                           f"`python -m daw_bridge install reaper`")
        self.envelopes = [None] * 6
        if self.fx < 0:
            return
        names = {RPR_TrackFX_GetParamName(track, self.fx, i, "", 64)[4]: i
                 for i in range(RPR_TrackFX_GetNumParams(track, self.fx))}
        missing = [name for name in p.CONTROL_NAMES if name not in names]
        if missing:
            raise Skip(f"the DDSP expression effect on track '{track_label(track)}' has no {', '.join(missing)} "
                       f"slider (an old version? reinstall and re-add it)")
        for k, name in enumerate(p.CONTROL_NAMES):
            envelope = RPR_GetFXEnvelope(track, self.fx, names[name], create)
            if valid(envelope):
                self.envelopes[k] = envelope
                if create:
                    RPR_GetSetEnvelopeInfo_String(envelope, "ACTIVE", "1", True)
                    RPR_GetSetEnvelopeInfo_String(envelope, "VISIBLE", "1", True)

    @staticmethod
    def find(track) -> int:
        for i in range(RPR_TrackFX_GetCount(track)):
            name = RPR_TrackFX_GetFXName(track, i, "", 256)[3].lower()
            if name.startswith(FX_TAGS[0]) or FX_TAGS[1] in name:
                return i
        return -1

    @property
    def readable(self) -> bool:
        return all(valid(e) for e in self.envelopes)

    def value(self, k: int, t: float) -> float:
        return RPR_Envelope_Evaluate(self.envelopes[k], t, self.sample_rate, 1, 0.0, 0.0, 0.0, 0.0)[5]

    def write(self, points: list[tuple[float, tuple]], start: float, end: float, old_times: list[float]) -> None:
        """Replace the points in [start, end) and at `old_times` (an earlier render's, when the item moved) by one
        square point per (time, six values)."""
        for envelope_k, envelope in enumerate(self.envelopes):
            RPR_DeleteEnvelopePointRange(envelope, start - SAME_TIME, end - SAME_TIME)
            for t in old_times:
                if not start - SAME_TIME <= t < end - SAME_TIME:
                    RPR_DeleteEnvelopePointRange(envelope, t - SAME_TIME, t + SAME_TIME)
            for t, values in points:
                RPR_InsertEnvelopePoint(envelope, t, float(values[envelope_k]), SQUARE, 0.0, False, True)
            RPR_Envelope_SortPoints(envelope)


# ---------------------------------------------------------------------------------------------------- requests

class ClipRequest:
    """Everything one render of one MIDI item sends, read from the project now. `signature` changes exactly when
    the render would (notes, controls to send, preset, rate, length, place)."""

    def __init__(self, item, config: dict, regenerate: bool = False):
        self.item = item
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
        if len(self.notes) > p.MAX_NOTES:
            raise Skip(f"it has {len(self.notes)} notes; the engine takes at most {p.MAX_NOTES}")
        self.regenerate = regenerate
        self.state = load_state(item)
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
            memory = remembered.get(note["id"])
            if memory is None:
                out.append(None)
                continue
            controls, written = list(memory["c"]), memory.get("l", memory["c"])
            if lanes_ok and abs(memory["t"] - note["time"]) < SAME_TIME:
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
                  None if c is None else [round(x, 6) for x in c]) for n, c in zip(self.notes, self.controls)]]
        return hashlib.sha1(json.dumps(data).encode()).hexdigest()

    def wire_notes(self) -> list[dict]:
        return [{"id": n["id"], "pitch": n["pitch"], "onset": n["onset"], "offset": n["offset"],
                 "velocity": n["velocity"], "controls": c} for n, c in zip(self.notes, self.controls)]

    def file_name(self) -> str:
        """A fresh bare file name for the engine (docs/protocol.md: [A-Za-z0-9][A-Za-z0-9._-]*.wav)."""
        slug = "".join(ch if ch.isalnum() else "_" for ch in track_label(self.track))[:40].strip("_") or "track"
        return f"{slug}-{self.guid.strip('{}')[:8]}-{int(time.time() * 1000)}-{os.urandom(2).hex()}.wav"


# ---------------------------------------------------------------------------------------------------- placing

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
    """The render is ready: copy it into the project, place it, write the lanes, remember what was sent. Returns a
    one-line summary. If the item changed while it rendered, the audio is placed but lanes and memory are left for
    the next render (follow mode does it)."""
    item = request.item
    if not RPR_ValidatePtr2(0, item, "MediaItem*"):
        raise Skip("the item was deleted while it rendered")
    path = copy_into_project(outcome.path, config["render_folder"])
    current = ClipRequest(item, config, regenerate=request.regenerate)
    changed = current.signature != request.signature
    RPR_Undo_BeginBlock2(0)
    RPR_PreventUIRefresh(1)
    try:
        state = request.state
        render_item = place_render(request, path, state.get("render"))
        state.update(render=item_string(render_item, "GUID"), file=path, clip=request.clip_id)
        if not changed:
            points, written = lane_points(request, outcome.controls)
            lanes = Lanes(request.track, create=True, sample_rate=request.sample_rate)
            old_times = [m["t"] for m in state.get("notes", {}).values()]
            lanes.write(points, request.position, request.position + request.length, old_times)
            notes = {}
            for note in request.notes:
                if note["id"] not in written:
                    continue
                memory = {"c": list(outcome.controls[note["id"]]), "t": note["time"]}
                if list(written[note["id"]]) != memory["c"]:
                    memory["l"] = list(written[note["id"]])
                notes[note["id"]] = memory
            state.update(notes=notes, track=track_string(request.track, "GUID"))
        # the signature of what the next render would send now; "stale" makes follow mode render it again
        state["sig"] = "stale"
        item_string(item, ITEM_STATE, json.dumps(state))
        if not changed:
            state["sig"] = ClipRequest(item, config).signature
            item_string(item, ITEM_STATE, json.dumps(state))
    finally:
        RPR_PreventUIRefresh(-1)
        RPR_Undo_EndBlock2(0, f"DDSP: render {request.label}", -1)
    RPR_UpdateArrange()
    RPR_Main_OnCommand(BUILD_PEAKS, 0)
    summary = (f"rendered {request.label}: {len(request.notes)} notes, {request.length:.2f} s, preset "
               f"'{request.preset}', {outcome.mode} ({len(outcome.rerendered)} re-rendered) in "
               f"{outcome.render_seconds:.2f} s")
    if changed:
        summary += "; the item changed while it rendered, so its lanes were not rewritten: render it again"
    return summary


# ---------------------------------------------------------------------------------------------------- the engine

class Engine:
    """One UDP socket to the engine and the protocol Bridge on it; `pump(now)` once per defer cycle. `ready` once
    the engine answered the handshake; `error` when it cannot be reached (after starting it, when a command is
    configured)."""

    def __init__(self, config: dict, client_name: str):
        self.config = config
        self.address = (config["host"], int(config["port"]))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if self.address[0] in ("127.0.0.1", "localhost") else "0.0.0.0", 0))
        self.sock.setblocking(False)
        self.bridge = p.Bridge(client_name, timing=p.Timing(connect_timeout=float(config["connect_timeout"])))
        self.ready = False
        self.error: str | None = None
        self.hello: p.Query | None = None
        self.process = None
        self.boot_deadline: float | None = None

    def close(self) -> None:
        self.sock.close()

    def pump(self, now: float) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # Windows reports an unreachable port of an earlier datagram here
                break
            self.bridge.handle_datagram(data, now)
        self._handshake(now)
        for datagram in self.bridge.poll(now):
            try:
                self.sock.sendto(datagram, self.address)
            except OSError:
                pass  # a full buffer or no route: the protocol sends again

    def _handshake(self, now: float) -> None:
        if self.ready or self.error:
            return
        if self.hello is None:
            self.hello = self.bridge.hello()
            return
        if self.hello.state == "done":
            self.ready = True
            if self.process is not None:
                say("the engine is up")
            return
        if self.hello.state != "failed":
            return
        code, message = self.hello.error
        if code != p.NO_ENGINE:
            self.error = f"the engine refused the handshake: {code}: {message}"
        elif self.process is None and self.config.get("engine_command"):
            self._start_engine(now)
        elif self.process is not None and self.process.poll() is not None:
            self.error = (f"the engine started by the scripts exited (code {self.process.returncode}); its output "
                          f"is in {self.log_path}")
        elif self.boot_deadline is not None and now < self.boot_deadline:
            self.hello = self.bridge.hello()
        elif self.process is not None:
            self.error = (f"the engine did not answer within {self.config['boot_timeout']:g} s of being started; "
                          f"its output is in {self.log_path}")
        else:
            self.error = self.no_engine_message()

    def no_engine_message(self) -> str:
        host, port = self.address
        port_option = "" if port == p.DEFAULT_PORT else f" --port {port}"
        return (f"no engine answered on {host}:{port}. Start it in a terminal, from the environment where the "
                f"engine is installed:  python -m engine serve{port_option}  and run the action again (or run "
                f"`python -m daw_bridge install reaper` from that environment, so the scripts can start it "
                f"themselves). Nothing was changed in the project.")

    @property
    def log_path(self) -> str:
        return self.config.get("engine_log") or os.path.join(tempfile.gettempdir(), "ddsp-engine.log")

    def _start_engine(self, now: float) -> None:
        command = self.config["engine_command"]
        say(f"starting the engine: {' '.join(command)} (output in {self.log_path})")
        options = {}
        if os.name == "nt":
            options["creationflags"] = 0x00000008 | 0x00000200  # DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP
        else:
            options["start_new_session"] = True
        try:
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(command, cwd=self.config.get("engine_cwd") or None,
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                **options)
        except OSError as error:
            self.error = f"could not start the engine ({' '.join(command)}): {error}"
            return
        self.boot_deadline = now + float(self.config["boot_timeout"])
        self.hello = self.bridge.hello()


# ---------------------------------------------------------------------------------------------------- the loop

class Runner:
    """One action's defer loop: `step(now)` runs once per REAPER defer cycle (~30 per second) until it returns
    False; the socket is closed and `finish()` called at the end, or when REAPER terminates the script."""

    def __init__(self, context: dict, name: str):
        self.context = context
        self.config = load_config(script_folder(context))
        self.engine = Engine(self.config, name)
        self.closed = False
        context["_ddsp_tick"] = self.tick
        context["_ddsp_exit"] = self.close
        context["RPR_atexit"]("_ddsp_exit()")

    def start(self) -> None:
        self.context["RPR_defer"]("_ddsp_tick()")

    def tick(self) -> None:
        if self.closed:
            return
        try:
            again = self.step(time.monotonic())
        except Exception:
            say("internal error, stopping:\n" + traceback.format_exc())
            again = False
        if again:
            self.context["RPR_defer"]("_ddsp_tick()")
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.finish()
            finally:
                self.engine.close()

    def step(self, now: float) -> bool:
        raise NotImplementedError

    def finish(self) -> None:
        pass


class RenderJob:
    """One item's render: waits for the engine, uploads, waits, applies the result."""

    def __init__(self, request: ClipRequest):
        self.request = request
        self.session: p.RenderSession | None = None
        self.done = False
        self.outcome: p.RenderOutcome | None = None
        self.reported = 0.0

    def submit(self, engine: Engine) -> None:
        request = self.request
        self.session = engine.bridge.render(request.clip_id, request.preset, request.wire_notes(),
                                            request.sample_rate, request.length, request.seed,
                                            request.file_name(), listener=self._event)

    def _event(self, session, event: str) -> None:
        if event == "queued" and session.ahead:
            say(f"{self.request.label}: queued behind {session.ahead} render(s)")
        elif event == "warning":
            say(f"{self.request.label}: engine warning: {session.warnings[-1]}")
        elif event == "progress" and session.progress - self.reported >= 0.25:
            self.reported = session.progress
            say(f"{self.request.label}: rendering {100 * session.progress:.0f}%")


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
        for item in items:
            try:
                request = ClipRequest(item, self.config, self.regenerate)
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
            job.done = True
            self._finished(job)
        return not all(job.done for job in self.jobs)

    def _finished(self, job: RenderJob) -> None:
        session = job.session
        if session.state == "failed":
            self.failed += 1
            code, message = session.error
            say(f"{job.request.label}: render failed: {code}: {message}")
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


# ---------------------------------------------------------------------------------------------------- follow mode

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


# ---------------------------------------------------------------------------------------------------- presets

class PresetChooser(Runner):
    """List the engine's presets, ask for one, store it on the selected tracks."""

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
        current = track_preset(self.targets[0])
        ok, _, _, _, answer, _ = RPR_GetUserInputs("DDSP preset", 1, "Preset (name or number):,extrawidth=120",
                                                   current, 512)
        if not ok:
            return
        answer = answer.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(names):
            answer = names[int(answer) - 1]
        if answer not in names:
            say(f"no preset named '{answer}'; the engine has: {', '.join(names)}")
            return
        for track in self.targets:
            track_string(track, TRACK_PRESET, answer)
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
