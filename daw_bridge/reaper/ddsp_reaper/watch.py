"""What follow mode checks, read cheaply. REAPER's Python wrapper allocates and zero-fills a 4 MiB buffer for every
char* argument, a string in or out (~0.2 ms each on REAPER's UI thread), so:

- while REAPER reports no change (the project's state change count, no render noted), the periodic check reads
  numbers only: `item_numbers`, `LaneWatch.counts`, `tempo_numbers`, the project rate; no string at all;
- after a change, a followed item costs one string read (its notes' and CC events' `MIDI_GetHash`) and a track
  with followed items seven (its preset, its six lanes' state chunks), however many notes they hold;
- only an item whose fingerprint changed has its render request rebuilt (about ten calls a note).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from .lanes import Lanes
from .project import item_span, valid
from .settings import CHUNK_SIZE


def tempo_numbers() -> tuple:
    """The tempo map, in numbers."""
    return tuple(tuple(RPR_GetTempoTimeSigMarker(0, i, 0.0, 0, 0.0, 0.0, 0, 0, False)[2:])
                 for i in range(RPR_CountTempoTimeSigMarkers(0)))


def item_numbers(item, take) -> tuple:
    """An item's track, active take, place, take offset and rate, and its numbers of notes and CC events."""
    return (RPR_GetMediaItem_Track(item), RPR_GetActiveTake(item), *item_span(item),
            RPR_GetMediaItemTakeInfo_Value(take, "D_STARTOFFS"), RPR_GetMediaItemTakeInfo_Value(take, "D_PLAYRATE"),
            *RPR_MIDI_CountEvts(take, 0, 0, 0)[2:4])


@dataclass
class Followed:
    """A rendered item of the active project, as follow mode last read it."""
    item: str
    take: str
    guid: str
    name: str  # its memory's name (P_EXT) when `state` was read
    state: dict
    numbers: tuple = ()  # item_numbers at the last check
    print: str = ""  # the full fingerprint at the last check after a change


class LaneWatch:
    """A track's six lanes: their envelopes kept (checked by number), their point counts (numbers), their points
    (six state chunks: string reads, after a change only)."""

    def __init__(self, track):
        self.track = track
        self.envelopes: list = []
        self.counted: tuple = ()

    def counts(self) -> tuple:
        """Numbers only: each kept lane's number of points (-1: gone)."""
        return tuple(RPR_CountEnvelopePoints(e) if RPR_ValidatePtr2(0, e, "TrackEnvelope*") else -1
                     for e in self.envelopes)

    def fingerprint(self) -> str:
        """Every point of the six lanes (the lanes are found again if one went away)."""
        if len(self.envelopes) < 6 or -1 in self.counts():
            fx = Lanes.find(self.track)
            envelopes = [RPR_GetFXEnvelope(self.track, fx, k, False) for k in range(6)] if fx >= 0 else []
            self.envelopes = [e for e in envelopes if valid(e)]
        self.counted = self.counts()
        chunks = [RPR_GetEnvelopeStateChunk(e, "", CHUNK_SIZE, False)[2] for e in self.envelopes]
        if any(len(chunk) >= CHUNK_SIZE - 1 for chunk in chunks):  # too long to see whole: always look closer
            return os.urandom(8).hex()
        return hashlib.sha1("\n".join(chunks).encode()).hexdigest() if chunks else "none"
