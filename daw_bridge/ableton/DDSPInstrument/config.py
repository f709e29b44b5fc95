"""The script's settings: `config.json` next to this file (written by `python -m daw_bridge install ableton`),
every key optional. A missing file gives the defaults; a bad value is reported in Live's log and its default used.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields

CONFIG_FILE = "config.json"


@dataclass
class Settings:
    host: str = "127.0.0.1"  # the engine (`python -m engine serve --host/--port`)
    port: int = 9718
    preset: str = "parametric"  # used when the rack's name does not name one ("DDSP Expression: flute")
    sample_rate: int = 48000  # of the rendered files (Live converts on playback)
    seed: int = 0  # noise seed: the same clip renders to the same samples
    tail: bool = False  # True: render the reverb tail past the clip end (a following render may cut it)
    debounce_seconds: float = 1.0  # follow mode: re-render once the clip has been left alone this long
    connect_timeout: float = 5.0  # no answer from the engine this long: the render fails with a message
    lost_after: float = 5.0  # the engine went silent this long during a render: it fails with a message
    scan_clips_per_tick: int = 2  # follow mode: clips checked for edits per tick (bounds the work per tick)
    lane_steps_per_tick: int = 400  # envelope steps written per tick after a render (bounds the work per tick)


def load(folder: str, log) -> Settings:
    """Settings from `folder/config.json`; `log(text)` reports what could not be used."""
    settings = Settings()
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.exists(path):
        return settings
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
        if not isinstance(values, dict):
            raise ValueError("expected a JSON object")
    except (OSError, ValueError) as error:
        log("cannot read %s (%s); using the defaults" % (path, error))
        return settings
    for spec in fields(Settings):
        if spec.name not in values:
            continue
        default = getattr(settings, spec.name)
        value = values[spec.name]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
                (value >= 0 if spec.name == "seed" else value > 0)
            value = type(default)(value) if ok else value
        else:
            ok = isinstance(value, str) and value != ""
        if ok:
            setattr(settings, spec.name, value)
        else:
            log("config.json: %s=%r is not valid; using %r" % (spec.name, value, default))
    unknown = sorted(set(values) - {spec.name for spec in fields(Settings)})
    if unknown:
        log("config.json: unknown keys ignored: %s" % ", ".join(unknown))
    return settings
