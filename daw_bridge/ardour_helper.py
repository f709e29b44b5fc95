"""The helper process of the Ardour scripts: `python -m daw_bridge ardour-render REQUEST RAW`.

Ardour's Lua can send UDP but cannot receive it, so the render action (daw_bridge/ardour/ddsp_lib.lua) writes a
region's notes to a request file, runs this command through `io.popen` and reads its stdout. The command renders
through the engine with `daw_bridge.client` (the OSC protocol of docs/protocol.md), writes the audio to RAW as
little-endian float32 mono at the session rate, exactly `samples` long (what the Lua player loads), and prints
tab-separated lines:

    ok        <mode> <notes re-rendered> <render seconds>
    audio     <RAW> <samples> <engine file>
    control   <note id> <the six controls used, exact>      (one line per note)
    warning   <message>                                      (repairs the engine made)
    error     <code> <message>                               (instead of all the above; exit status 1)

The request file (UTF-8, tab-separated, one item per line):

    ddsp-ardour-request  1
    clip         <clip id>
    preset       <preset name>
    sample_rate  <Hz>
    samples      <file length in samples: the region's length>
    seed         <int>
    note         <id> <pitch> <onset s> <offset s> <velocity> <six controls; all six -1: the engine chooses> [<channel>]
    event        <bend|cc|pressure|poly> <channel 0-15> <number> <time s from the region start> <value> <ramp 0/1>

`event` lines are the region's controller data (pitch bend -8192..8191, CC/pressure 0..127; ramp 1: the line to the
lane's next event is interpolated); they become the notes' curves (daw_bridge.midi_expression, as a MIDI file's
would), sent to the engine with the notes.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import protocol as p
from .client import EngineClient, EngineError
from .commands import command, engine_arguments
from .files import write_atomic
from .midi_expression import Event, attach_curves, expand_ramps, note_curves

MAGIC = "ddsp-ardour-request"
VERSION = "1"
BAD_REQUEST = "bad_request"
ENGINE_START_SECONDS = 90.0


class RequestError(Exception):
    pass


@dataclasses.dataclass
class Request:
    clip: str
    preset: str
    sample_rate: int
    samples: int
    seed: int
    notes: list[dict]


def parse_request(text: str) -> Request:
    """Request file text -> Request; RequestError names the line and what is wrong."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].split("\t") != [MAGIC, VERSION]:
        raise RequestError(f"not a version {VERSION} request (first line must be '{MAGIC}<TAB>{VERSION}')")
    fields: dict[str, str] = {}
    notes, events = [], []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        try:
            if parts[0] == "note":
                notes.append(_note(parts))
            elif parts[0] == "event":
                events.append(_event(parts))
            elif parts[0] in ("clip", "preset", "sample_rate", "samples", "seed") and len(parts) == 2:
                fields[parts[0]] = parts[1]
            else:
                raise ValueError(f"unknown item {parts[0]!r} or wrong field count")
        except ValueError as error:
            raise RequestError(f"line {number}: {error}") from None
    missing = [k for k in ("clip", "preset", "sample_rate", "samples") if k not in fields]
    if missing:
        raise RequestError(f"missing {', '.join(missing)}")
    if not notes:
        raise RequestError("no notes")
    try:
        sample_rate, samples, seed = int(fields["sample_rate"]), int(fields["samples"]), int(fields.get("seed", "0"))
    except ValueError as error:
        raise RequestError(str(error)) from None
    if not p.MIN_SAMPLE_RATE <= sample_rate <= p.MAX_SAMPLE_RATE:
        raise RequestError(f"sample_rate {sample_rate} outside {p.MIN_SAMPLE_RATE}..{p.MAX_SAMPLE_RATE}")
    if not 0 < samples <= p.MAX_SECONDS * sample_rate:
        raise RequestError(f"samples {samples} outside 1..{int(p.MAX_SECONDS)} s")
    _add_curves(notes, events)
    return Request(fields["clip"], fields["preset"], sample_rate, samples, seed, notes)


def _event(parts: list[str]) -> tuple[Event, bool]:
    if len(parts) != 7 or parts[1] not in ("bend", "cc", "pressure", "poly"):
        raise ValueError("an event has 6 fields: bend|cc|pressure|poly, channel, number, time, value, ramp")
    time_ = float(parts[4])
    if not math.isfinite(time_):
        raise ValueError("event time must be finite")
    channel, number, value = int(parts[2]), int(parts[3]), int(parts[5])
    low, high = (-8192, 8191) if parts[1] == "bend" else (0, 127)
    if not (0 <= channel <= 15 and 0 <= number <= 127 and low <= value <= high):
        raise ValueError(f"event channel, number or value out of range: {parts[2:6]}")
    return Event(time_, channel, parts[1], number, value), parts[6] == "1"


def _add_curves(notes: list[dict], events: list[tuple[Event, bool]]) -> None:
    """The notes' curves from the region's controller events (the notes' channels then leave the dicts)."""
    if events:
        attach_curves(notes, note_curves(notes, expand_ramps(events)))
    for note in notes:
        note.pop("channel", None)


def _note(parts: list[str]) -> dict:
    if len(parts) not in (12, 13):
        raise ValueError(f"a note has 11 fields (12 with its channel), got {len(parts) - 1}")
    values = [float(v) for v in parts[6:12]]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("controls must be finite")
    note = {"id": parts[1], "pitch": int(parts[2]), "onset": float(parts[3]), "offset": float(parts[4]),
            "velocity": int(parts[5]), "channel": int(parts[12]) if len(parts) == 13 else 0}
    if not 0 <= note["channel"] <= 15:
        raise ValueError(f"channel {note['channel']} is outside 0..15")
    if not all(v == p.GENERATE for v in values):
        note["controls"] = [min(1.0, max(0.0, v)) for v in values]
    return note


def fit_audio(path: str, sample_rate: int, samples: int) -> np.ndarray:
    """The engine's file -> float32 mono, exactly `samples` long (zero-padded or cut). [samples]"""
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise EngineError(p.RENDER_FAILED, f"{path} is at {rate} Hz, the session at {sample_rate} Hz")
    mono = audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
    out = np.zeros(samples, dtype="<f4")
    n = min(samples, len(mono))
    out[:n] = mono[:n]
    return out


def write_raw(path: str, audio: np.ndarray) -> None:
    """Little-endian float32, written atomically (the Lua side only ever sees a complete file)."""
    write_atomic(path, lambda tmp: Path(tmp).write_bytes(audio.astype("<f4").tobytes()))


def engine_answers(host: str, port: int, wait: float = 2.0) -> bool:
    timing = p.Timing(resend=0.1, connect_timeout=wait)
    with EngineClient(host, port, "ardour helper", timing=timing) as engine:
        try:
            engine.hello(timeout=wait + 1)
            return True
        except EngineError as error:
            if error.code in (p.NO_ENGINE, p.TIMEOUT):
                return False
            raise


def engine_files() -> tuple[Path, Path]:
    """Log and pid file of an engine this helper starts, next to the engine's default render folder."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ddsp-engine"
    return cache / "engine.log", cache / "engine.pid"


def start_engine(host: str, port: int) -> None:
    """Start `python -m engine serve` in the background (it outlives this helper; its pid goes to engine.pid) and
    wait until it answers."""
    log, pid_file = engine_files()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--host", host, "--port", str(port)],
                                   stdin=subprocess.DEVNULL, stdout=handle, stderr=handle, start_new_session=True)
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + ENGINE_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineError(p.NO_ENGINE, f"the engine exited at start-up with status {process.returncode} "
                                           f"(see {log})")
        if engine_answers(host, port, wait=1.0):
            return
    raise EngineError(p.NO_ENGINE, f"started the engine but it did not answer within {ENGINE_START_SECONDS:g} s "
                                   f"(see {log})")


def render(request: Request, raw: str, host: str, port: int, timeout: float | None) -> list[str]:
    """Render through the engine, write RAW; returns the reply lines."""
    with EngineClient(host, port, "ardour helper") as engine:
        result = engine.render(request.clip, request.preset, request.notes, request.sample_rate,
                               request.samples / request.sample_rate, request.seed, timeout=timeout, retries=2)
    write_raw(raw, fit_audio(result.path, request.sample_rate, request.samples))
    lines = [f"ok\t{result.mode}\t{len(result.rerendered)}\t{result.render_seconds:.3f}",
             f"audio\t{raw}\t{request.samples}\t{result.path}"]
    for note_id, controls in result.controls.items():
        lines.append("\t".join(["control", note_id] + [repr(float(c)) for c in controls]))
    lines.extend(f"warning\t{_one_line(w)}" for w in result.warnings)
    return lines


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def helper_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request", help="request file written by the Ardour script")
    parser.add_argument("raw", help="where to write the audio (raw float32 little-endian, mono)")
    parser.add_argument("--start-engine", action="store_true",
                        help="start `python -m engine serve` when no engine answers")
    engine_arguments(parser)


@command("ardour-render", "helper of the Ardour scripts: render a request file, answer on stdout",
         helper_arguments)
def cmd_ardour_render(args: argparse.Namespace) -> None:
    try:
        request = parse_request(Path(args.request).read_text(encoding="utf-8"))
        if not engine_answers(args.host, args.port):
            if not args.start_engine:
                raise EngineError(p.NO_ENGINE, f"no engine answers at {args.host}:{args.port} (start it: python -m "
                                               f"engine serve --port {args.port})")
            start_engine(args.host, args.port)
        lines = render(request, args.raw, args.host, args.port, args.timeout)
    except RequestError as error:
        lines, failed = [f"error\t{BAD_REQUEST}\t{_one_line(error)}"], True
    except EngineError as error:
        lines, failed = [f"error\t{error.code}\t{_one_line(error.message)}"], True
    except OSError as error:
        lines, failed = [f"error\tio\t{_one_line(error)}"], True
    else:
        failed = False
    print("\n".join(lines), flush=True)
    if failed:
        raise SystemExit(1)
