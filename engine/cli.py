"""Command line: `python -m engine render|presets|inspect ...` (also installed as `ddsp-engine`).

Errors print one line (`error: ...`) and exit with status 1; nothing is left half-written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .notes import CONTROL_NAMES, Clip, NoteError

FALLBACK_PRESET = "parametric"


class CliError(Exception):
    pass


def choose_presets(clips: list[Clip], preset: str | None, track_presets: list[str]) -> list:
    """One preset per clip: --track-preset TRACK=NAME (track index or name) > --preset > a preset whose GM program
    matches the track's > the parametric baseline (with a warning)."""
    from .presets import list_presets, load_preset

    mapping = {}
    for item in track_presets:
        track, sep, name = item.partition("=")
        if not sep or not track or not name:
            raise CliError(f"--track-preset wants TRACK=NAME, got {item!r}")
        mapping[track] = name
    by_program = {}
    for info in list_presets():
        if info["kind"] == "neural" and info.get("program") is not None:
            by_program.setdefault(int(info["program"]), info["name"])
    chosen = []
    for index, clip in enumerate(clips):
        name = mapping.get(str(index)) or mapping.get(clip.name) or preset or by_program.get(clip.program)
        if name is None:
            print(f"note: no preset for track {clip.name!r} (GM program {clip.program}); using the "
                  f"'{FALLBACK_PRESET}' baseline (pass --preset)", file=sys.stderr)
            name = FALLBACK_PRESET
        chosen.append(load_preset(name))
    return chosen


def load_clips(path: str, expression: str | None = None) -> list[Clip]:
    from .notes import clips_from_midi
    from .render import read_expression

    clips = clips_from_midi(path)
    for clip in clips:
        for repair in clip.repairs:
            print(f"note: {clip.name}: {repair}", file=sys.stderr)
    if expression and Path(expression).exists():
        clips = read_expression(expression, clips)
    return clips


def cmd_render(args) -> None:
    from tqdm import tqdm

    from .render import expression_document, render_clips, write_audio, write_json_atomic

    clips = load_clips(args.input, args.expression)
    presets = choose_presets(clips, args.preset, args.track_preset)
    seconds = max(c.end for c in clips)
    with tqdm(total=sum(len(c.voices()) for c in clips), unit="voice", desc="render",
              disable=seconds * len(clips) < 1.0 or args.quiet, file=sys.stderr) as bar:
        result = render_clips(list(zip(clips, presets)), args.sample_rate, seed=args.seed, stems=bool(args.stems),
                              progress=lambda done, total: bar.update(done - bar.n))
    write_audio(args.output, result.audio, args.sample_rate, args.bits)
    if args.stems:
        names = [f"{i:02d}-{_slug(c.name)}-v{v}" for i, c in enumerate(clips) for v in range(len(c.voices()))]
        for name, stem in zip(names, result.stems):
            write_audio(Path(args.stems) / f"{name}{Path(args.output).suffix}", stem, args.sample_rate, args.bits)
    if args.expression and not Path(args.expression).exists():
        write_json_atomic(args.expression, expression_document(clips, result.controls))
        print(f"wrote the per-note controls to {args.expression} (edit it and render again)", file=sys.stderr)
    peak = float(abs(result.audio).max())
    if not args.quiet:
        print(f"{args.output}: {result.duration:.2f} s at {args.sample_rate} Hz, {len(result.voices)} voices, "
              f"peak {peak:.3f}{' (clipped: lower the volume control or use --bits float)' if peak > 1 and args.bits != 'float' else ''}")


def cmd_presets(args) -> None:
    from .presets import list_presets

    for info in list_presets():
        program = f"GM {info['program']}" if info.get("program") is not None else "-"
        print(f"{info['name']:<14} {info['kind']:<10} {program:<7} {info['description']}")


def cmd_inspect(args) -> None:
    from .render import resolve_controls

    clips = load_clips(args.input, args.expression)
    presets = choose_presets(clips, args.preset, args.track_preset)
    lanes = []
    for clip, preset in zip(clips, presets):
        voices = clip.voices()
        print(f"track {clip.name!r}: {len(clip.notes)} notes, {len(voices)} voice(s), GM program {clip.program}, "
              f"{clip.notes[0].onset:.3f}-{clip.end:.3f} s, preset {preset.name}")
        for v, notes in enumerate(voices):
            controls = resolve_controls(notes, preset)
            lanes.append((clip.name, v, notes, controls))
            if args.notes:
                print("  " + "  ".join(["id", "voice", "pitch", "onset", "offset", "vel"] + list(CONTROL_NAMES)))
                for note, row in zip(notes, controls.tolist()):
                    print(f"  {note.id} {v} {note.pitch} {note.onset:.3f} {note.offset:.3f} {note.velocity} "
                          + " ".join(f"{x:.3f}" for x in row))
    if args.plot:
        from .plot import plot_clip

        plot_clip(lanes, args.plot, title=Path(args.input).name)
        print(f"wrote {args.plot}")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)[:40] or "track"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Render MIDI with expressive DDSP presets.")
    sub = parser.add_subparsers(dest="command", required=True)

    def preset_args(p):
        p.add_argument("--preset", help="preset for every track (default: by each track's GM program)")
        p.add_argument("--track-preset", action="append", default=[], metavar="TRACK=NAME",
                       help="preset for one track, by index or name (repeatable)")
        p.add_argument("--expression", metavar="FILE.json",
                       help="per-note controls: read when the file exists, else written after the render")

    render = sub.add_parser("render", help="render a MIDI file to audio")
    render.add_argument("input", help="MIDI file")
    render.add_argument("-o", "--output", required=True, help="output .wav or .flac")
    render.add_argument("--sample-rate", type=int, default=48000, help="Hz, 16000-96000 (default 48000)")
    render.add_argument("--bits", choices=["16", "24", "float"], default="24")
    render.add_argument("--stems", metavar="DIR", help="also write one file per voice here")
    render.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same bytes)")
    render.add_argument("-q", "--quiet", action="store_true")
    preset_args(render)
    render.set_defaults(func=cmd_render)

    presets = sub.add_parser("presets", help="list presets")
    presets.set_defaults(func=cmd_presets)

    inspect = sub.add_parser("inspect", help="show notes, voices and controls of a MIDI file")
    inspect.add_argument("input", help="MIDI file")
    inspect.add_argument("--notes", action="store_true", help="print every note with its controls")
    inspect.add_argument("--plot", metavar="OUT.png", help="piano roll with the six control lanes under it")
    preset_args(inspect)
    inspect.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .presets import PresetError

    try:
        args.func(args)
    except (CliError, NoteError, PresetError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
