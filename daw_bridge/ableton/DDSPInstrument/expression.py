"""Which controls each note is rendered with, and which lane steps to write after a render (pure logic, no Live).

The script remembers, per sounding note of a clip, what its last render used (`Memo`: the engine's six controls
and the six lane values read back after writing them). For the next render of the clip, a note gets:
- its remembered controls, except those whose lane the user has changed since (read back value differs by more
  than TOLERANCE): those take the lane's value;
- its remembered controls when it moved (its expression moves with it; its steps are rewritten after the render);
- the lane values when nothing is remembered yet (first render since Live started: the lanes saved in the set);
- None (the engine's expression generator chooses) for a note added since the last render.
Unchanged notes are sent with exactly the values the engine returned, so the engine re-renders only edited notes.
"""
from __future__ import annotations

from dataclasses import dataclass

TOLERANCE = 1e-4  # control units (0..1); well above float32 rounding of a macro value, far below an edit


@dataclass(frozen=True)
class Memo:
    start: float  # beats from the render start
    clip_time: float
    controls: tuple  # the six controls the engine used
    lane: tuple | None  # the six lane values at clip_time after the last write (entries None: no such lane)


def _same(a, b) -> bool:
    return a is not None and b is not None and abs(a - b) <= TOLERANCE


def choose(occurrences, lanes: dict | None, memos: dict) -> dict:
    """{note id: six controls, or None to let the engine choose}. `lanes`: lanes.read() of the clip now."""
    chosen = {}
    for o in occurrences:
        memo = memos.get(o.id)
        lane = lanes.get(o.clip_time) if lanes else None
        if memo is not None and memo.start == o.start and memo.clip_time == o.clip_time:
            if lane is None or memo.lane is None:
                chosen[o.id] = memo.controls
            else:
                chosen[o.id] = tuple(c if now is None or _same(now, was) else now
                                     for c, now, was in zip(memo.controls, lane, memo.lane))
        elif memo is not None:
            chosen[o.id] = memo.controls
        elif not memos and lane is not None and None not in lane:
            chosen[o.id] = lane
        else:
            chosen[o.id] = None
    return chosen


def lane_updates(occurrences, controls: dict, lanes: dict | None, plan, memos: dict) -> dict:
    """After a render: {step start: six values to write (None = already right)} for the steps that need writing.
    A step carries the controls of the lowest note starting there in the first pass (chords share a step). A note
    starting where no remembered note starts gets its step written in full, so every note has its own step."""
    starts = {start for start, _ in plan}
    first = {}
    for o in sorted(occurrences, key=lambda o: (o.clip_time, "." in o.id, o.pitch)):
        if o.clip_time in starts and o.clip_time not in first and o.id in controls:
            first[o.clip_time] = controls[o.id]
    known = {memo.clip_time for memo in memos.values()}
    updates = {}
    for start, values in first.items():
        now = lanes.get(start) if lanes and (not memos or start in known) else None
        row = tuple(None if now is not None and _same(now[i], v) else v for i, v in enumerate(values))
        if any(v is not None for v in row):
            updates[start] = row
    return updates


def remember(occurrences, controls: dict, lanes: dict | None) -> dict:
    """The memos after a render whose controls were `controls` and whose lanes now read `lanes`."""
    return {o.id: Memo(o.start, o.clip_time, tuple(controls[o.id]), lanes.get(o.clip_time) if lanes else None)
            for o in occurrences if o.id in controls}


def close(now, expected) -> bool:
    """True when lane values read `now` match `expected` (entries None in `expected` are not compared)."""
    if now is None:
        return all(v is None for v in expected)
    return all(e is None or _same(n, e) for n, e in zip(now, expected))
