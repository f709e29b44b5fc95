"""What of a MIDI clip sounds, as notes in beats from the clip's first sounding beat (sample 0 of its render).

Live plays a clip from its start marker; a looped clip then repeats its loop (start..end of the loop brace). A
Session clip renders one clip length (`Clip.length`: the loop length when looped); an Arrangement clip renders its
whole span in the arrangement (`end_time - start_time`), its loop unrolled. Each sounding note gets an id stable
across edits of other notes: `n<note_id>` (Live's note id, unique within the clip), `n<note_id>.<k>` for its k-th
repeat. Muted notes are skipped; a note is cut where its loop pass or the clip ends.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_SEGMENTS = 4096  # loop passes unrolled at most (a 1-beat loop over 1000 bars)


@dataclass(frozen=True)
class Occurrence:
    """One sounding note of a render. Times in beats: `start`/`end` from the render's start, `clip_time` where the
    note starts in the clip (where its expression lane values live)."""
    id: str
    pitch: int
    start: float
    end: float
    velocity: int
    clip_time: float


@dataclass(frozen=True)
class Window:
    segments: tuple  # ((clip_from, clip_to, render_offset), ...) in beats
    span: float  # beats rendered
    lane_end: float  # clip time where the last expression step ends (loop end, or the end marker)


def window(clip) -> Window:
    span = clip.end_time - clip.start_time if clip.is_arrangement_clip else clip.length
    if not clip.looping:
        start = clip.start_marker
        return Window(((start, start + span, 0.0),), span, clip.end_marker)
    loop_start, loop_end = clip.loop_start, clip.loop_end
    first = clip.start_marker if loop_start <= clip.start_marker < loop_end else loop_start
    segments = [(first, loop_end, 0.0)]
    offset = loop_end - first
    while offset < span and loop_end > loop_start and len(segments) < MAX_SEGMENTS:
        segments.append((loop_start, loop_end, offset))
        offset += loop_end - loop_start
    return Window(tuple(segments), span, loop_end)


def read(clip, win: Window | None = None) -> list:
    """The clip's sounding notes as Occurrences, sorted by start then pitch."""
    win = win or window(clip)
    low = min(a for a, _, _ in win.segments)
    high = max(b for _, b, _ in win.segments)
    notes = list(clip.get_notes_extended(0, 128, low, high - low))
    out = []
    for k, (a, b, offset) in enumerate(win.segments):
        for note in notes:
            begin = note.start_time
            if note.mute or not a <= begin < b:
                continue
            start = begin - a + offset
            end = min(min(begin + note.duration, b) - a + offset, win.span)
            if start >= win.span or end <= start:
                continue
            ident = "n%d" % note.note_id if k == 0 else "n%d.%d" % (note.note_id, k)
            velocity = min(127, max(1, int(round(note.velocity))))
            out.append(Occurrence(ident, int(note.pitch), start, end, velocity, begin))
    out.sort(key=lambda o: (o.start, o.pitch, o.id))
    return out


def request_notes(occurrences, tempo: float, controls: dict) -> list:
    """Occurrences -> the protocol's note dicts (seconds); `controls[id]` is six values or None (engine chooses)."""
    seconds = 60.0 / tempo
    return [{"id": o.id, "pitch": o.pitch, "onset": o.start * seconds, "offset": o.end * seconds,
             "velocity": o.velocity, "controls": controls.get(o.id)} for o in occurrences]


def position_key(track_name: str, slot, clip) -> str:
    """Where a clip is: `<track>|s<slot>` (Session) or `<track>|a<start beat>` (Arrangement)."""
    if slot is not None:
        return "%s|s%d" % (track_name, slot)
    return "%s|a%.6f" % (track_name, clip.start_time)


def digest(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]


def engine_clip_id(token: str, key: str) -> str:
    """The protocol's clip id: unique per Live session (`token`), readable, at most 200 characters."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", key)[:100].strip("_")
    return "live-%s-%s-%s" % (token, slug, digest(key))


def render_tag(key: str) -> str:
    """Ends the name of every audio clip rendered from the clip at `key`: how a re-render finds the one it replaces."""
    return "[ddsp %s]" % digest(key)
