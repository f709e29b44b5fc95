"""The six expression lanes of a MIDI track: envelopes of the DDSP expression JSFX's sliders."""
from __future__ import annotations

import hashlib
import os

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p

from .project import track_label, valid
from .settings import FX_TAGS, JSFX_NAMES, SAME_TIME, SQUARE, Skip


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
