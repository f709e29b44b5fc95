"""REAPER's objects as the scripts read them: tracks, items, takes, their strings, the project's rate and id.

Every string read or written goes through a 4 MiB buffer REAPER's Python wrapper allocates and zero-fills (a char*
argument); what runs often (follow mode's checks) reads numbers instead."""
from __future__ import annotations

import os

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge.midi_expression import DEFAULT_BEND_SEMITONES, Zones

from .settings import COMPANION_OF, DEFAULT_PRESET, SECTION, TRACK_BEND_RANGE, TRACK_MPE, TRACK_PRESET


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
    """The active project tab's pointer (a string read: call it once per action or change, not per cycle)."""
    return str(RPR_EnumProjects(-1, "", 512)[0])


def project_sample_rate_numbers() -> tuple:
    """The project's rate setting without a string read (the audio device's rate needs one)."""
    return (RPR_GetSetProjectInfo(0, "PROJECT_SRATE_USE", 0, False), RPR_GetSetProjectInfo(0, "PROJECT_SRATE", 0,
                                                                                            False))


def track_preset(track) -> str:
    return track_string(track, TRACK_PRESET) or DEFAULT_PRESET


def track_bend_range(track) -> float:
    """The track's pitch-bend range in semitones (P_EXT:ddsp_bend_range) for channels that set none with RPN 0;
    default 2; a bad value counts as the default."""
    try:
        value = float(track_string(track, TRACK_BEND_RANGE) or DEFAULT_BEND_SEMITONES)
    except ValueError:
        return DEFAULT_BEND_SEMITONES
    return value if 0.0 <= value <= 96.0 else DEFAULT_BEND_SEMITONES


def track_zones(track) -> Zones | None:
    """The track's MPE zones (P_EXT:ddsp_mpe: "lower", "upper", "lower 7", "lower 7 upper 7"; a number is the
    member-channel count, default 15), or None: from the MPE configuration messages in the item, if any."""
    words = track_string(track, TRACK_MPE).lower().split()
    if not words:
        return None
    zones = Zones()
    for i, word in enumerate(words):
        if word in ("lower", "upper"):
            count = int(words[i + 1]) if i + 1 < len(words) and words[i + 1].isdigit() else 15
            setattr(zones, word, min(count, 15))
    if zones.lower and zones.upper and zones.lower + zones.upper > 14:
        zones.upper = max(0, 14 - zones.lower)
    return zones
