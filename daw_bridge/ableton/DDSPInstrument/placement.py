"""Where a render lands: an audio clip on the MIDI track's companion audio track "<track name> (DDSP)" (created
right after the MIDI track when missing), at the MIDI clip's place: the same Session slot, or the same Arrangement
position (`Track.create_audio_clip(path, beats)`, Live 12.0.5+). The audio clip is named "<clip name> [ddsp <key>]";
a re-render deletes every audio clip on the companion track carrying that tag, then places the new one. The clip is
left unwarped so it plays the file's samples at their own rate: sample 0 at the MIDI clip's start.

`Track.create_audio_clip` returns nothing before Live 12.2 (its C++ function is void; Live's API stubs): the new clip
is then found among the track's Arrangement clips by its position and file.
"""
from __future__ import annotations

import os

COMPANION_SUFFIX = " (DDSP)"


class PlacementError(Exception):
    """A render that cannot be placed; the message says what the producer can do about it."""


def companion_track(song, midi_track):
    name = midi_track.name + COMPANION_SUFFIX
    tracks = list(song.tracks)
    for track in tracks:
        if track.name == name and not track.has_midi_input:
            return track
    index = next((i for i, track in enumerate(tracks) if track == midi_track), len(tracks) - 1)
    track = song.create_audio_track(index + 1)
    track.name = name
    return track


def remove_previous(track, tag: str) -> int:
    """Delete the audio clips on `track` named with `tag`; returns how many."""
    removed = 0
    for clip in list(track.arrangement_clips):
        if clip.name.endswith(tag):
            track.delete_clip(clip)
            removed += 1
    for slot in track.clip_slots:
        if slot.has_clip and slot.clip.name.endswith(tag):
            slot.delete_clip()
            removed += 1
    return removed


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.normpath(a)) == os.path.normcase(os.path.normpath(b))


def find_arrangement_clip(track, path: str, start_beats: float, tag: str):
    """The audio clip just inserted at `start_beats` from `path` (Live 12.0.5-12.1 return None for it): an
    Arrangement clip there playing that file, preferring one not yet tagged as a render."""
    found = [clip for clip in track.arrangement_clips
             if abs(clip.start_time - start_beats) < 1e-6 and _same_file(clip.file_path, path)]
    untagged = [clip for clip in found if not clip.name.endswith(tag)]
    if not (untagged or found):
        raise PlacementError("Live inserted the audio at beat %g of track %r but the script cannot find it there; "
                             "the file is %s" % (start_beats, track.name, path))
    return (untagged or found)[-1]


def place(song, midi_track, slot, start_beats: float, path: str, name: str, tag: str):
    """Put the file at `path` where the MIDI clip is (Session `slot`, or Arrangement `start_beats` when slot is
    None), replacing its previous render. Returns the new audio clip."""
    track = companion_track(song, midi_track)
    remove_previous(track, tag)
    if slot is None:
        if not hasattr(track, "create_audio_clip"):
            raise PlacementError("placing audio in the Arrangement needs Live 12.0.5+ (Track.create_audio_clip)")
        clip = track.create_audio_clip(path, start_beats)
        if clip is None:  # Live before 12.2
            clip = find_arrangement_clip(track, path, start_beats, tag)
    else:
        target = track.clip_slots[slot]
        if target.has_clip:
            raise PlacementError("slot %d of track %r holds a clip that is not this clip's render: move it, then "
                                 "render again" % (slot + 1, track.name))
        if not hasattr(target, "create_audio_clip"):
            raise PlacementError("placing audio in a Session slot needs Live 12.0.5+ (ClipSlot.create_audio_clip)")
        clip = target.create_audio_clip(path)
    clip.name = "%s %s" % (name, tag)
    clip.warping = False
    return clip
