"""The "DDSP Expression" rack on a MIDI track and its clip envelopes.

The rack is any rack device (a MIDI Effect Rack is the natural one) whose name starts with "DDSP Expression"; text
after a colon names the preset ("DDSP Expression: flute"). Its macros are found by name (case, spaces and
punctuation ignored): the six controls "Volume", "Volume Fluctuation", "Volume Peak Position", "Vibrato",
"Brightness", "Attack Noise", and two switches, "Render" and "Follow" (on when past the middle of their range).

A control's lane is the clip envelope of its macro: one step per note start (from that start to the next note's
start, or the loop/clip end) holding the control mapped onto the macro's range (0..1 -> min..max). Lanes are read
just after each note start, so a user's edit anywhere in a note's step counts. Live only has clip envelopes
(`Clip.automation_envelope`) on Session clips: it returns None for Arrangement clips (docs/ableton.md).
"""
from __future__ import annotations

from dataclasses import dataclass

RACK_NAME = "DDSP Expression"
MACRO_NAMES = ("Volume", "Volume Fluctuation", "Volume Peak Position", "Vibrato", "Brightness", "Attack Noise")
RENDER, FOLLOW = "Render", "Follow"
READ_AFTER = 1e-3  # beats after a step's start where its value is read (at most half the step)


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


@dataclass
class Rack:
    device: object
    controls: list  # six DeviceParameters in MACRO_NAMES order (None where the rack lacks that macro)
    render: object  # DeviceParameter or None
    follow: object  # DeviceParameter or None
    preset: str | None  # from the rack's name

    @property
    def missing(self) -> list:
        named = zip(MACRO_NAMES + (RENDER, FOLLOW), self.controls + [self.render, self.follow])
        return [name for name, param in named if param is None]


def find_rack(track) -> Rack | None:
    for device in track.devices:
        name = device.name
        if not device.can_have_chains or not _norm(name).startswith(_norm(RACK_NAME)):
            continue
        by_name = {}
        for param in device.parameters:
            by_name.setdefault(_norm(param.name), param)
        preset = name.split(":", 1)[1].strip() if ":" in name else ""
        return Rack(device, [by_name.get(_norm(m)) for m in MACRO_NAMES], by_name.get(_norm(RENDER)),
                    by_name.get(_norm(FOLLOW)), preset or None)
    return None


def is_on(param) -> bool:
    return param is not None and param.value >= (param.min + param.max) / 2.0


def to_unit(param, value: float) -> float:
    return (value - param.min) / (param.max - param.min)


def from_unit(param, unit: float) -> float:
    return param.min + min(1.0, max(0.0, unit)) * (param.max - param.min)


def step_plan(clip_times, lane_end: float) -> list:
    """Distinct note start times (clip beats) -> [(start, length)], each step reaching the next start."""
    times = sorted(set(t for t in clip_times if t < lane_end))
    return [(t, (times[i + 1] if i + 1 < len(times) else lane_end) - t) for i, t in enumerate(times)]


def read(clip, rack: Rack, plan) -> dict | None:
    """{step start: six lane values in 0..1 (None where that lane has no envelope)}, or None when the clip has no
    envelope for any control (Arrangement clips never do)."""
    envelopes = [clip.automation_envelope(param) if param is not None else None for param in rack.controls]
    if all(envelope is None for envelope in envelopes):
        return None
    values = {}
    for start, length in plan:
        at = start + min(READ_AFTER, length / 2.0)
        values[start] = tuple(to_unit(param, envelope.value_at_time(at)) if envelope is not None else None
                              for param, envelope in zip(rack.controls, envelopes))
    return values


def write(clip, rack: Rack, plan, values: dict):
    """Generator: write `values[start]` (six values in 0..1, None = leave that lane alone) as steps; yields after each
    step so the caller can spread a long clip over several ticks."""
    lengths = dict(plan)
    for index, param in enumerate(rack.controls):
        if param is None:
            continue
        envelope = None
        for start in sorted(values):
            unit = values[start][index]
            if unit is None or start not in lengths:
                continue
            if envelope is None:
                envelope = clip.automation_envelope(param) or clip.create_automation_envelope(param)
            envelope.insert_step(start, lengths[start], from_unit(param, unit))
            yield
