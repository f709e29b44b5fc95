"""Command line: `python -m engine render|batch|presets|inspect|serve ...` (also installed as `ddsp-engine`).

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


def check_input(path: str) -> None:
    """A missing, unreadable or empty input file is reported before the engine (torch) is imported."""
    file = Path(path)
    if not file.exists():
        raise CliError(f"no such MIDI file: {path}")
    if not file.is_file():
        raise CliError(f"{path} is not a file")
    try:
        with open(file, "rb") as handle:
            empty = not handle.read(1)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    if empty:
        raise CliError(f"{path} is empty")


def load_clips(path: str, expression: str | None = None, bend_range: float = 2.0,
               mpe: str | None = None) -> list[Clip]:
    """The MIDI file's clips (and the expression file's controls, when it exists); no torch until the file reads."""
    from .notes import clips_from_midi

    check_input(path)
    if not 0.0 <= bend_range <= 96.0:
        raise NoteError(f"--bend-range {bend_range:g}: use 0 to 96 semitones")
    clips = clips_from_midi(path, bend_range=bend_range, mpe=mpe)
    for clip in clips:
        for repair in clip.repairs:
            print(f"note: {clip.name}: {repair}", file=sys.stderr)
    if expression and Path(expression).exists():
        from .render import read_expression

        clips = read_expression(expression, clips)
    return clips


def cmd_render(args) -> None:
    import logging

    clips = load_clips(args.input, args.expression, args.bend_range, args.mpe)  # bad input answers before torch
    from tqdm import tqdm

    from daw_bridge.files import write_json_atomic
    from .render import expression_document
    from .stream import render_to_file, return_freed_arrays

    return_freed_arrays()
    logging.getLogger("engine.render").addHandler(logging.NullHandler())  # its warnings are printed below, once
    presets = choose_presets(clips, args.preset, args.track_preset)
    seconds = max(c.end for c in clips)
    stem_paths = None
    if args.stems:
        names = [f"{i:02d}-{_slug(c.name)}-v{v}" for i, c in enumerate(clips) for v in range(len(c.voices()))]
        stem_paths = [Path(args.stems) / f"{name}{Path(args.output).suffix}" for name in names]
    n_voices = sum(len(c.voices()) for c in clips)
    with tqdm(total=n_voices + 1, unit="step", desc="render", bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
              disable=seconds * len(clips) < 1.0 or args.quiet, file=sys.stderr) as bar:
        result = render_to_file(list(zip(clips, presets)), args.output, args.sample_rate, args.bits, seed=args.seed,
                                stem_paths=stem_paths, progress=lambda done, total: bar.update(done - bar.n))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.expression and not Path(args.expression).exists():
        write_json_atomic(args.expression, expression_document(clips, result.controls, result.sounding))
        print(f"wrote the per-note controls to {args.expression} (edit it and render again)", file=sys.stderr)
    peak = result.peak
    if not args.quiet:
        print(f"{args.output}: {result.duration:.2f} s at {args.sample_rate} Hz, {result.n_voices} voices, "
              f"peak {peak:.3f}{' (clipped: lower the volume control or use --bits float)' if peak > 1 and args.bits != 'float' else ''}")


def render_batch_output(job) -> dict:
    """One output of `batch` (an engine.batch.RenderJob), rendered as `render FILE --preset P` renders it, then its
    sidecar; runs in a worker (a pool process or a Ray worker). -> {"seconds", "warnings"}."""
    import logging

    import torch

    from .batch import check_job, write_sidecar
    from .stream import render_to_file

    torch.set_num_threads(1)  # one task per core
    logging.getLogger("engine.render").addHandler(logging.NullHandler())  # warnings come back in the result
    check_job(job)
    clips = load_clips(job.midi)
    result = render_to_file(list(zip(clips, choose_presets(clips, job.preset, []))), job.output, job.sample_rate,
                            job.bits, seed=0, threads=1)
    write_sidecar(job)
    return {"seconds": result.duration, "warnings": result.warnings}


def cmd_batch(args) -> None:
    from .batch import job_label, parse_presets, parse_rates, plan, summary_line
    from .runner import RunnerError, Task

    runner = runner_options(args)
    jobs, skipped = plan(args.inputs, parse_presets(args.presets), parse_rates(args.sample_rate), args.bits, args.out)
    tasks = [Task(job_label(job), render_batch_output, (job,)) for job in jobs]
    try:
        outcomes = runner.run(tasks, desc="batch", unit="file", quiet=args.quiet)
    except RunnerError as error:
        raise CliError(str(error)) from None
    for outcome in outcomes:
        for warning in outcome.value["warnings"] if outcome.ok else ():
            print(f"warning: {outcome.label}: {warning}", file=sys.stderr)
    failed = sum(not o.ok for o in outcomes)
    print(summary_line(len(outcomes) - failed, skipped, failed, args.out))
    if failed:
        raise CliError(f"{failed} of {len(outcomes) + skipped} outputs failed (each named above); the others are done")


def cmd_presets(args) -> None:
    from .presets import list_presets

    for info in list_presets():
        program = f"GM {info['program']}" if info.get("program") is not None else "-"
        print(f"{info['name']:<14} {info['kind']:<10} {program:<7} {info['description']}")


def cmd_inspect(args) -> None:
    from .render import resolve_voices

    clips = load_clips(args.input, args.expression, args.bend_range, args.mpe)
    presets = choose_presets(clips, args.preset, args.track_preset)
    lanes = []
    for clip, preset in zip(clips, presets):
        voices = clip.voices()
        print(f"track {clip.name!r}: {len(clip.notes)} notes, {len(voices)} voice(s), GM program {clip.program}, "
              f"{clip.notes[0].onset:.3f}-{clip.end:.3f} s, preset {preset.name}")
        for v, (notes, controls) in enumerate(zip(voices, resolve_voices(voices, preset))):
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


def cmd_train(args) -> None:
    from .training.train import TrainConfig, TrainError, train

    if min(args.steps, args.spectral_steps, args.adversarial_steps) < 0:
        raise CliError("--steps, --spectral-steps and --adversarial-steps must be 0 or more")
    config = TrainConfig(instrument=args.instrument, data=args.data or f"data/{args.instrument}",
                         out=args.out or f"presets/{args.instrument}", steps=args.steps, batch=args.batch,
                         channels=args.channels, checkpoint_every=args.checkpoint_every, seed=args.seed,
                         runs=args.runs or "", threads=args.threads, spectral_steps=args.spectral_steps,
                         adversarial_steps=args.adversarial_steps)
    if args.tiny:
        config.channels, config.dilations, config.batch, config.crop_frames = 16, [1, 2], 2, 200
        config.expression_hidden, config.expression_batch, config.expression_notes = 8, 2, 16
        config.expression_steps = 20
        config.spectral_batch, config.spectral_frames = 2, 50
    try:
        summary = train(config, resume=args.resume, progress=not args.quiet, expression_only=args.expression_only)
    except TrainError as error:
        raise CliError(str(error)) from None
    print(f"{config.out}: trained {summary['step']} steps in {summary['seconds']:.0f} s "
          f"(loss {summary['losses'].get('synthesis', float('nan')):.3f}); run `python -m engine evaluate "
          f"{config.out}` for its metrics")


def cmd_evaluate(args) -> None:
    from .training.evaluate import DOCS_TABLE, evaluate
    from .training.train import TrainError

    docs = None if args.no_docs else Path(args.docs or DOCS_TABLE)
    try:
        metrics = evaluate(args.preset, args.data, fidelity_notes=args.fidelity_notes, max_pieces=args.max_pieces,
                           docs=docs)
    except TrainError as error:
        raise CliError(str(error)) from None
    rec = metrics["reconstruction"]
    print(f"{args.preset}: spectral distance {rec['spectral_distance_db']:.2f} dB (baseline "
          f"{rec['baseline_spectral_distance_db']:.2f}), f0 {rec['f0_error_cents_median']:.1f} cents, loudness "
          f"{rec['loudness_error_db_median']:.2f} dB; expression MSE {metrics['expression']['mse']:.4f} (mean "
          f"predictor {metrics['expression']['mse_training_mean']:.4f}); targets {metrics['targets_met']}")


def cmd_dataset(args) -> None:
    from .training.dataset import build_soundfont_dataset, coverage_report
    from .training.recordings import build_recordings_dataset

    if bool(args.instrument) == bool(args.recordings):
        raise CliError("pass either --instrument NAME (soundfont renders) or --recordings DIR (your audio)")
    runner = runner_options(args)
    if args.recordings:
        meta = build_recordings_dataset(args.recordings, args.out, args.instrument_name or Path(args.out).name,
                                        program=args.program, held_out=args.held_out,
                                        sample_rate=args.sample_rate, seed=args.seed, quiet=args.quiet,
                                        runner=runner)
    else:
        meta = build_soundfont_dataset(args.out, args.instrument, pieces=args.pieces,
                                       held_out=6 if args.held_out is None else args.held_out,
                                       sample_rate=args.sample_rate, soundfont=args.soundfont, seed=args.seed,
                                       max_seconds=args.max_seconds, flatten=not args.keep_soundfont_vibrato,
                                       quiet=args.quiet, musical=not args.no_musical, runner=runner)
    print(coverage_report(meta))
    print(f"wrote {args.out} ({len(meta['splits']['train'])} train, {len(meta['splits']['test'])} held-out pieces; "
          f"coverage also in {Path(args.out) / 'coverage.txt'})")


def cmd_serve(args) -> None:
    import logging

    from .service import ServiceConfig, serve

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), filename=args.log_file,
                        format="%(asctime)s %(levelname)s %(message)s")
    config = ServiceConfig(host=args.host, port=args.port, render_dir=args.render_dir, workers=args.workers,
                           threads=args.threads,
                           queue_size=args.queue_size, keep_hours=args.keep_hours, cache_mb=args.cache_mb,
                           incremental=not args.no_incremental,
                           preload=tuple(n for n in (args.preload or "").split(",") if n))
    serve(config, port_file=args.port_file)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)[:40] or "track"


def runner_args(parser) -> None:
    """--jobs / --ray / --ray-address (engine.runner)."""
    parser.add_argument("--jobs", type=int, metavar="N", help="tasks at once (default: the number of cores)")
    parser.add_argument("--ray", action="store_true", help="run the tasks on a local Ray instance started for them")
    parser.add_argument("--ray-address", metavar="ADDR", help="run the tasks on this Ray cluster (default "
                                                                "$RAY_ADDRESS with --ray; docs/cluster.md)")


def runner_options(args):
    """The --jobs / --ray / --ray-address of a command as engine.runner.RunnerOptions (jobs None: one per core)."""
    from .runner import RunnerOptions

    if args.jobs is not None and args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    return RunnerOptions(args.jobs, args.ray, args.ray_address)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Render MIDI with expressive DDSP presets.")
    sub = parser.add_subparsers(dest="command", required=True)

    def preset_args(p):
        p.add_argument("--preset", help="preset for every track (default: by each track's GM program)")
        p.add_argument("--track-preset", action="append", default=[], metavar="TRACK=NAME",
                       help="preset for one track, by index or name (repeatable)")
        p.add_argument("--expression", metavar="FILE.json",
                       help="per-note controls: read when the file exists, else written after the render")
        p.add_argument("--bend-range", type=float, default=2.0, metavar="SEMITONES",
                       help="pitch-bend range of channels that set none with RPN 0 (default 2)")
        p.add_argument("--mpe", choices=["lower", "upper"],
                       help="read the file as this MPE zone (15 member channels) when it carries no MPE configuration")

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

    batch = sub.add_parser("batch", help="render MIDI files or folders x presets x sample rates into an output tree",
                           description="Render every MIDI file (folders: *.mid/*.midi, recursively) with every "
                                       "preset at every rate into OUT/<preset>/<rate>/<relative path>.wav, each "
                                       "as `render FILE --preset P` would; outputs already done are skipped.")
    batch.add_argument("inputs", nargs="+", metavar="INPUT", help="MIDI file or folder")
    batch.add_argument("--presets", required=True, metavar="NAME,NAME", help="render each whole file with each")
    batch.add_argument("--out", required=True, metavar="DIR", help="output tree (on a cluster: a shared path)")
    batch.add_argument("--sample-rate", default="48000", metavar="HZ,HZ", help="one or more rates (default 48000)")
    batch.add_argument("--bits", choices=["16", "24", "float"], default="24")
    runner_args(batch)
    batch.add_argument("-q", "--quiet", action="store_true")
    batch.set_defaults(func=cmd_batch)

    presets = sub.add_parser("presets", help="list presets")
    presets.set_defaults(func=cmd_presets)

    inspect = sub.add_parser("inspect", help="show notes, voices and controls of a MIDI file")
    inspect.add_argument("input", help="MIDI file")
    inspect.add_argument("--notes", action="store_true", help="print every note with its controls")
    inspect.add_argument("--plot", metavar="OUT.png", help="piano roll with the six control lanes under it")
    preset_args(inspect)
    inspect.set_defaults(func=cmd_inspect)

    train = sub.add_parser("train", help="train a neural preset on a dataset folder")
    train.add_argument("--instrument", required=True, help="instrument name (violin, flute, ...)")
    train.add_argument("--data", help="dataset folder (default data/INSTRUMENT)")
    train.add_argument("--out", help="preset folder to write (default presets/INSTRUMENT)")
    train.add_argument("--steps", type=int, default=2500, help="regression steps (default 2500)")
    train.add_argument("--spectral-steps", type=int, default=300,
                       help="then steps through the synthesizer with a multi-resolution STFT loss (default 300)")
    train.add_argument("--adversarial-steps", type=int, default=0,
                       help="then steps with a multi-resolution spectrogram discriminator added (default 0)")
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--channels", type=int, default=96, help="width of the synthesis network")
    train.add_argument("--checkpoint-every", type=int, default=250, metavar="N")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --runs")
    train.add_argument("--expression-only", action="store_true",
                       help="keep the finished checkpoint's synthesis generator, train the expression generator again "
                            "(after rebuilding a dataset's musical pieces)")
    train.add_argument("--runs", help="folder for the checkpoint and train.log (default runs/INSTRUMENT)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    train.add_argument("--tiny", action="store_true", help="a tiny network (tests, smoke runs)")
    train.add_argument("-q", "--quiet", action="store_true")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="held-out metrics of a neural preset, written into its preset.json")
    evaluate.add_argument("preset", help="preset name or folder")
    evaluate.add_argument("--data", help="dataset folder (default: the one it was trained on)")
    evaluate.add_argument("--fidelity-notes", type=int, default=12, help="held-out notes in the control sweep")
    evaluate.add_argument("--max-pieces", type=int, help="use only the first N test pieces")
    evaluate.add_argument("--docs", help="metrics table to update (default docs/presets.md)")
    evaluate.add_argument("--no-docs", action="store_true", help="do not touch the docs table")
    evaluate.set_defaults(func=cmd_evaluate)
    dataset = sub.add_parser("dataset", help="build a training dataset: Bach chorale voices rendered by FluidSynth, "
                                               "or a folder of your own monophonic recordings (docs/dataset.md)")
    dataset.add_argument("--instrument", help="GM instrument to render: violin, viola, cello, contrabass, trumpet, "
                                                "trombone, tuba, horn, soprano_sax, alto_sax, oboe, bassoon, clarinet, flute")
    dataset.add_argument("--recordings", metavar="DIR", help="folder of WAV/FLAC recordings (same-named .mid optional)")
    dataset.add_argument("--out", required=True, help="dataset folder to write (resumes an interrupted build)")
    dataset.add_argument("--instrument-name", help="name of a recordings dataset (default: the --out folder name)")
    dataset.add_argument("--program", type=int, help="GM program of a recordings dataset (optional)")
    dataset.add_argument("--pieces", type=int, default=40, help="training chorale voices (default 40)")
    dataset.add_argument("--held-out", type=int, help="held-out pieces, never trained on (default 6; recordings: "
                                                      "about 15 %% of the files)")
    dataset.add_argument("--sample-rate", type=int, default=48000,
                         help="Hz (default 48000; the targets cover up to 20 kHz or half the rate)")
    dataset.add_argument("--soundfont", help="SF2/SF3 file (default FluidR3_GM.sf2)")
    dataset.add_argument("--max-seconds", type=float, default=20.0, help="longest piece (default 20 s)")
    dataset.add_argument("--keep-soundfont-vibrato", action="store_true",
                         help="do not cancel the vibrato recorded into the soundfont's samples")
    dataset.add_argument("--no-musical", action="store_true",
                         help="only coverage performances (no musical ones for the expression generator)")
    dataset.add_argument("--seed", type=int, default=0)
    runner_args(dataset)
    dataset.add_argument("-q", "--quiet", action="store_true")
    dataset.set_defaults(func=cmd_dataset)
    serve = sub.add_parser("serve", help="run the background engine service (OSC over UDP, docs/protocol.md)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=9718, help="UDP port (default 9718; 0 picks a free one)")
    serve.add_argument("--port-file", help="write the bound port here once listening")
    serve.add_argument("--render-dir", help="folder the engine owns for rendered files "
                                            "(default ~/.cache/ddsp-engine/renders)")
    serve.add_argument("--workers", type=int, default=1, help="renders at once (default 1)")
    serve.add_argument("--threads", type=int, default=1, help="torch threads per render (default 1: leaves the "
                                                             "other cores to the DAW)")
    serve.add_argument("--queue-size", type=int, default=16, help="renders waiting at most (default 16)")
    serve.add_argument("--keep-hours", type=float, default=72.0, help="delete renders older than this (default 72)")
    serve.add_argument("--cache-mb", type=int, default=256, help="memory for incremental re-render state (default 256)")
    serve.add_argument("--no-incremental", action="store_true", help="always render in full")
    serve.add_argument("--preload", metavar="NAME,NAME", help="presets to load at start-up")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-file", help="log here instead of stderr")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CliError, NoteError, ValueError, OSError) as error:  # engine.presets.PresetError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
