"""The six expression lanes of a MIDI track: envelopes of the DDSP expression JSFX's sliders."""
from __future__ import annotations

import os

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p

from .project import track_label, valid
from .settings import FX_TAGS, JSFX_FILES, JSFX_NAMES, SAME_TIME, SQUARE, Skip


def is_expression_fx(track, index: int) -> bool:
    """Whether the effect at `index` is the DDSP expression JSFX, by what it is (its fx_ident, REAPER 6.37+), not by
    the name shown in the FX chain, which the user may change; by that name only where REAPER has no fx_ident."""
    ok, _, _, _, ident, _ = RPR_TrackFX_GetNamedConfigParm(track, index, "fx_ident", "", 1024)
    if ok and ident:
        return ident.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower() in JSFX_FILES
    name = RPR_TrackFX_GetFXName(track, index, "", 256)[3].lower()
    return name.startswith(FX_TAGS[0]) or FX_TAGS[1] in name


class Lanes:
    """The six expression lanes of a track: envelopes of the DDSP expression JSFX's sliders (one per control)."""

    def __init__(self, track, create: bool, sample_rate: int = 48000):
        self.track, self.sample_rate = track, sample_rate
        self.fx = self.find(track)
        created = False
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
            envelope = RPR_GetFXEnvelope(track, self.fx, names[name], False)
            if not valid(envelope) and create:
                envelope = RPR_GetFXEnvelope(track, self.fx, names[name], True)
                if valid(envelope):  # a new lane: shown once (a lane the user hid later stays hidden)
                    created = True
                    RPR_GetSetEnvelopeInfo_String(envelope, "ACTIVE", "1", True)
                    RPR_GetSetEnvelopeInfo_String(envelope, "VISIBLE", "1", True)
            if valid(envelope):
                self.envelopes[k] = envelope
        if created:  # new envelopes may not show before this (GetSetEnvelopeInfo_String's documentation)
            RPR_TrackList_AdjustWindows(False)

    @staticmethod
    def find(track) -> int:
        for i in range(RPR_TrackFX_GetCount(track)):
            if is_expression_fx(track, i):
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
