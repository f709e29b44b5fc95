"""Note curves: per-note breakpoint curves that shape the synthesis parameters (level 3 from the DAW). Pure Python,
no torch, no engine: the engine (engine.notes, engine.curves) and the DAW bridge share these rules.

A note's `curves` map a name to breakpoints ((t, value), ...), t in seconds from the note's onset, sorted by t.
Values are linear between points, held before the first and after the last; two points at the same t make a step
(the later one holds from t on). Names, units and limits:

| name | meaning | limits |
|---|---|---|
| cents | f0 offset: f0 x 2^(cents / 1200) | +-9600 |
| gain_db | harmonic amplitude and noise magnitudes x 10^(dB / 20) | -120 .. +24 |
| brightness | offset in brightness-control units (harmonic centroid / 12), per frame | -1 .. +1 |

JSON form (note dicts, the expression file, the protocol): "curves": {"cents": [[t, v], ...], ...}.
"""
from __future__ import annotations

import bisect
import math
from typing import Iterable, Sequence

CURVE_NAMES = ("cents", "gain_db", "brightness")
CURVE_LIMITS = {"cents": (-9600.0, 9600.0), "gain_db": (-120.0, 24.0), "brightness": (-1.0, 1.0)}
MAX_POINTS = 20000  # per curve
TIME_TOLERANCE = 1e-6  # seconds a point may lie outside its note before it counts as outside

Points = tuple[tuple[float, float], ...]
Curves = tuple[tuple[str, Points], ...]  # (name, points) in CURVE_NAMES order: hashable, for frozen notes


class CurveError(ValueError):
    """A curve that cannot be used; the message says why in one line."""


def curves_from_data(raw: object) -> Curves:
    """{"cents": [[t, v], ...], ...} (or a Curves tuple) -> Curves, sorted by time (stable: steps keep their order).
    Checks the structure and that every number is finite; limits and times are `checked_curves`' business."""
    if raw is None:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    out = {}
    try:
        for name, points in items:
            if name not in CURVE_LIMITS:
                raise CurveError(f"unknown curve {name!r} (known: {', '.join(CURVE_NAMES)})")
            pairs = [(float(t), float(v)) for t, v in points]
            if not all(math.isfinite(t) and math.isfinite(v) for t, v in pairs):
                raise CurveError(f"curve {name!r} has a point that is not a finite number")
            out[name] = tuple(sorted(pairs, key=lambda p: p[0]))
    except CurveError:
        raise
    except (TypeError, ValueError) as error:
        raise CurveError(f"curves must map a name to [[t, value], ...] pairs: {error}") from None
    return tuple((name, out[name]) for name in CURVE_NAMES if name in out)


def checked_curves(curves: Curves, duration: float, repair: bool) -> tuple[Curves, list[str]]:
    """Check values and sizes (always errors) and times: points outside [0, duration] are an error, or with
    `repair` the curve is clipped to the note (its values at 0 and at the end kept). -> (curves, what was repaired)."""
    out, repairs = [], []
    for name, points in curves:
        low, high = CURVE_LIMITS[name]
        if len(points) > MAX_POINTS:
            raise CurveError(f"curve {name!r} has {len(points)} points; at most {MAX_POINTS} are accepted")
        bad = next((v for _, v in points if not low <= v <= high), None)
        if bad is not None:
            raise CurveError(f"curve {name!r} value {bad:g} is outside [{low:g}, {high:g}]")
        if not points:
            continue
        if points[0][0] < -TIME_TOLERANCE or points[-1][0] > duration + TIME_TOLERANCE:
            where = f"{points[0][0]:g} .. {points[-1][0]:g} s"
            if not repair:
                raise CurveError(f"curve {name!r} spans {where}, outside the note (0 .. {duration:g} s)")
            points = clip_points(points, duration)
            repairs.append(f"curve {name!r} clipped to the note (it spanned {where})")
        out.append((name, tuple(points)))
    return tuple(out), repairs


def value_at(points: Sequence[tuple[float, float]], t: float) -> float:
    """The curve's value at t: linear between points, held outside them; at a step, the later point's value."""
    if t < points[0][0]:
        return points[0][1]
    lo = bisect.bisect_right(points, t, key=lambda point: point[0])  # first index with time > t
    if lo == len(points):
        return points[-1][1]
    (t0, v0), (t1, v1) = points[lo - 1], points[lo]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def clip_points(points: Sequence[tuple[float, float]], duration: float) -> Points:
    """The curve over [0, duration] only: the points inside, plus its values at 0 and at `duration` when points
    lay beyond them."""
    inside = [(t, v) for t, v in points if 0.0 <= t <= duration]
    if points[0][0] < 0.0:
        inside.insert(0, (0.0, value_at(points, 0.0)))
    if points[-1][0] > duration:
        inside.append((duration, value_at(points, duration)))
    return tuple(inside)


def curves_to_data(curves: Curves) -> dict:
    return {name: [[round(t, 9), round(v, 6)] for t, v in points] for name, points in curves}


# -------------------------------------------------------------------------------------------- step functions
# MIDI controllers are steps: a stream is [(time in seconds, value), ...] in time order; its value holds from each
# event to the next. Curves combine streams (a bend and its range, CC11 and pressure) into one value per instant.
Stream = Sequence[tuple[float, float]]


def combined_steps(streams: Sequence[Stream], defaults: Sequence[float | None], combine) -> list[tuple[float, float]]:
    """Steps of combine(*values) over time: (t, value) after the events at each time of any stream. A stream
    with no event yet has its default (None = not present)."""
    events = sorted(((t, k, v) for k, stream in enumerate(streams) for t, v in stream), key=lambda e: e[0])
    current = list(defaults)
    steps: list[tuple[float, float]] = []
    for t, k, v in events:  # sorted() is stable: events at one time keep their stream's order
        current[k] = v
        if steps and steps[-1][0] == t:
            steps.pop()
        steps.append((t, combine(*current)))
    return steps


def note_points(steps: Sequence[tuple[float, float]], onset: float, offset: float, neutral: float) -> Points:
    """The breakpoints over a note [onset, offset) of a step function (`combined_steps`): the value in effect at
    the onset (its last step at or before it), then a step at each change inside the note. () when no step lies
    before the offset or the value stays `neutral` over the whole note."""
    first = bisect.bisect_right(steps, onset, key=lambda s: s[0])
    last = bisect.bisect_left(steps, offset, lo=first, key=lambda s: s[0])
    inside = steps[first:last]
    if not first and not inside:
        return ()
    value = steps[first - 1][1] if first else neutral
    points = [(0.0, value)]
    for t, v in inside:
        if v != value:
            points += [(round(t - onset, 9), value), (round(t - onset, 9), v)]
            value = v
    if all(v == neutral for _, v in points):
        return ()
    return tuple((t, round(v, 6)) for t, v in points)


def bend_cents(bend: float | None, range_semitones: float) -> float:
    """A 14-bit pitch-bend value (-8192 .. 8191, 0 = centre) at a bend range -> cents (value / 8192 x range, the
    convention pretty_midi and most synthesizers use: the top, 8191, sits 0.012 % under the range)."""
    return 0.0 if bend is None else bend / 8192.0 * range_semitones * 100.0


def clamp(value: float, name: str) -> float:
    low, high = CURVE_LIMITS[name]
    return min(max(value, low), high)


def gather(points_by_name: Iterable[tuple[str, Points]]) -> Curves:
    """(name, points) pairs -> Curves, empty curves left out."""
    found = {name: points for name, points in points_by_name if points}
    return tuple((name, found[name]) for name in CURVE_NAMES if name in found)
