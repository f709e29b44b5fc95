"""The commands that talk to a running engine: `send` (render a MIDI file), `ping`, `presets`."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from . import protocol as p
from .client import EngineClient, EngineError
from .commands import CliError, command, engine_arguments
from .files import write_atomic, write_json_atomic
from .midifile import MidiError, read_midi_tracks


def send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="MIDI file")
    parser.add_argument("--preset", default="parametric", help="preset name (default parametric)")
    parser.add_argument("--track", type=int, help="only this track (its index, as in the note ids t<index>n<i>); "
                                                  "default: every pitched track, each rendered as its own clip")
    parser.add_argument("--clip-id", help="stable id of the clip (default: the file name; tracks add #t<index>); "
                                          "a re-send with changed controls re-renders incrementally")
    parser.add_argument("--sample-rate", type=int, default=48000, help="Hz (default 48000)")
    parser.add_argument("--length", type=float, default=0.0, help="file length in seconds (default: notes + tail)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bend-range", type=float, default=2.0, metavar="SEMITONES",
                        help="pitch-bend range of channels that set none with RPN 0 (default 2)")
    parser.add_argument("--mpe", choices=["lower", "upper"],
                        help="read the file as this MPE zone (15 member channels) when it carries no MPE configuration")
    parser.add_argument("--controls-in", metavar="FILE.json", help="per-note controls to use ({id: {name: value}} "
                                                                   "as written by --controls)")
    parser.add_argument("-o", "--output", help="write the audio here (.wav; several tracks are mixed)")
    parser.add_argument("--controls", metavar="FILE.json", help="write the per-note controls used here")
    parser.add_argument("--retries", type=int, default=2, help="re-send after a lost/restarted engine (default 2)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    engine_arguments(parser)


@command("send", "render a MIDI file through a running engine", send_arguments)
def cmd_send(args: argparse.Namespace) -> None:
    try:
        read = read_midi_tracks(args.input, args.bend_range, args.mpe)
    except MidiError as error:
        raise CliError(str(error)) from None
    tracks = [(track["index"], track["notes"]) for track in read]
    for repair in dict.fromkeys(r for track in read for r in track["repairs"]):
        if not args.quiet:
            print(f"note: {repair}", file=sys.stderr)  # what reading the controllers repaired (bend range, MCM)
    if args.track is not None:
        tracks = [(index, notes) for index, notes in tracks if index == args.track]
        if not tracks:
            raise CliError(f"{args.input} has no pitched notes in track {args.track}")
    if args.controls_in:
        given = _read_json(args.controls_in)
        for _, notes in tracks:
            for note in notes:
                if note["id"] in given:
                    note["controls"] = given[note["id"]]
    base_id = args.clip_id or Path(args.input).name
    show = not args.quiet and not args.json

    def progress(fraction: float, state: str) -> None:
        if show:
            print(f"\r{state:<10} {100 * fraction:5.1f}%", end="", file=sys.stderr, flush=True)

    def on_retry(error: EngineError) -> None:
        print(f"\nwarning: {error}; sending again", file=sys.stderr)

    results = []
    with EngineClient(args.host, args.port, "daw_bridge send") as engine:
        for index, notes in tracks:
            clip_id = base_id if len(tracks) == 1 else f"{base_id}#t{index}"
            result = engine.render(clip_id, args.preset, notes, args.sample_rate, args.length, args.seed,
                                   progress=progress, timeout=args.timeout, retries=args.retries, on_retry=on_retry)
            results.append((index, result))
            if show:
                print(f"\rtrack {index}: {result.path}: {result.duration:.2f} s, {result.mode} render of "
                      f"{len(result.rerendered)}/{len(result.controls)} notes in {result.render_seconds:.2f} s",
                      file=sys.stderr)
    for _, result in results:
        for warning in result.warnings:
            print(f"note: {warning}", file=sys.stderr)
    path = results[0][1].path
    if args.output:
        path = str(_write_output([r.path for _, r in results], args.output))
    controls = {i: dict(zip(p.CONTROL_NAMES, c)) for _, r in results for i, c in r.controls.items()}
    if args.controls:
        write_json_atomic(args.controls, controls)
    if args.json:
        print(json.dumps({"path": path, "controls": controls, "tracks": [
            {"track": index, "path": r.path, "duration": r.duration, "sample_rate": r.sample_rate, "mode": r.mode,
             "render_seconds": r.render_seconds, "rerendered": r.rerendered, "warnings": r.warnings}
            for index, r in results]}))
    else:
        print(path)


@command("ping", "check that an engine answers", engine_arguments)
def cmd_ping(args: argparse.Namespace) -> None:
    with EngineClient(args.host, args.port, "daw_bridge ping") as engine:
        hello = engine.hello(args.timeout)
        pong = engine.ping(args.timeout)
    print(f"engine {hello['engine_id']} (version {hello['engine_version']}, protocol {hello['protocol']}) at "
          f"{args.host}:{args.port}: {pong['queued']} queued, {pong['running']} running, up {pong['uptime']:.0f} s")


@command("presets", "list the engine's presets", engine_arguments)
def cmd_presets(args: argparse.Namespace) -> None:
    with EngineClient(args.host, args.port, "daw_bridge presets") as engine:
        for info in engine.presets(args.timeout):
            program = f"GM {info['program']}" if info["program"] >= 0 else "-"
            print(f"{info['name']:<14} {info['kind']:<10} {program:<7} {'loaded' if info['loaded'] else '':<7}"
                  f"{info['description'][:80]}")


def _read_json(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: expected an object {{note id: controls}}")
    return data


def _write_output(sources: list[str], target: str) -> Path:
    """One render: copy it to `target`; several: their sum, padded to the longest (float WAV). Atomic."""
    if len(sources) == 1:
        return write_atomic(target, lambda tmp: shutil.copyfile(sources[0], tmp))

    def mix(tmp: str) -> None:
        import numpy as np
        import soundfile as sf

        parts = [sf.read(source, dtype="float32") for source in sources]
        total = np.zeros(max(len(audio) for audio, _ in parts), dtype=np.float32)
        for audio, _ in parts:
            total[:len(audio)] += audio
        sf.write(tmp, total, parts[0][1], subtype="FLOAT", format="WAV")

    return write_atomic(target, mix)
