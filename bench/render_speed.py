"""Real-time factor of the full render (notes -> controls -> params -> audio, reverb and mix included).

Renders a ~60 s four-voice Bach chorale (music21 corpus) and its soprano alone at 16 / 44.1 / 48 kHz, and FluidSynth
rendering the same MIDI in the same run as the reference (machines here are noisy: compare the ratios). Voices run
side by side on engine.render.render_threads() threads ($DDSP_RENDER_THREADS, default: the CPUs available).
Run: .venv/bin/python bench/render_speed.py [--preset NAME ...] [--repeats 3] [--rates 48000 ...]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from engine.notes import clips_from_midi  # noqa: E402
from engine.presets import load_preset  # noqa: E402
from engine.render import render_clips  # noqa: E402

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PROGRAMS = (73, 68, 71, 70)


def chorale_midi(path: Path, seconds: float = 60.0, chorale: str = "bach/bwv269") -> Path:
    """A chorale's four voices as flute/oboe/clarinet/bassoon tracks, tempo set so it lasts `seconds`."""
    import pretty_midi
    from music21 import corpus

    score = corpus.parse(chorale)
    beat = seconds / float(score.duration.quarterLength)
    midi = pretty_midi.PrettyMIDI(initial_tempo=60.0 / beat)
    for part, program in zip(score.parts, PROGRAMS):
        track = pretty_midi.Instrument(program=program, name=part.partName or str(program))
        for note in part.flatten().notes:
            for pitch in getattr(note, "pitches", [note.pitch]):
                start = float(note.offset) * beat
                track.notes.append(pretty_midi.Note(90, pitch.midi, start, start + float(note.quarterLength) * beat))
        midi.instruments.append(track)
    midi.write(str(path))
    return path


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def fluidsynth_seconds(midi: Path, sample_rate: int, repeats: int) -> float | None:
    if not shutil.which("fluidsynth") or not SOUNDFONT.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-r", str(sample_rate), "-F", f"{tmp}/o.wav",
               str(SOUNDFONT), str(midi)]
        return best_of(repeats, lambda: subprocess.run(cmd, check=True, capture_output=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="presets to time (default: parametric + trained ones)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the main thread")
    parser.add_argument("--rates", type=int, nargs="+", default=[16000, 44100, 48000])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from engine.presets import list_presets

    names = args.preset or ["parametric"] + [p["name"] for p in list_presets() if p["kind"] == "neural"][:1]
    with tempfile.TemporaryDirectory() as tmp:
        midi = chorale_midi(Path(tmp) / "chorale.mid")
        clips = clips_from_midi(midi)
        seconds = max(c.end for c in clips)
        try:
            from engine.render import render_threads
            threads = f"render threads {render_threads()}, "
        except ImportError:  # an engine from before render threads
            threads = ""
        print(f"chorale: {seconds:.1f} s, {sum(len(c.notes) for c in clips)} notes, {len(clips)} voices; "
              f"{threads}torch threads {args.threads}; best of {args.repeats}")
        print(f"{'preset':<12} {'rate':>6} {'voices':>6} {'render s':>9} {'x real time':>11} {'fluidsynth s':>12} "
              f"{'ours / fluidsynth':>17}")
        for name in names:
            preset = load_preset(name)
            for sample_rate in args.rates:
                fluid = fluidsynth_seconds(midi, sample_rate, args.repeats)
                for parts in ([(clips[0], preset)], [(c, preset) for c in clips]):
                    took = best_of(args.repeats, lambda: render_clips(parts, sample_rate))
                    ratio = f"{took / fluid:.2f}" if fluid and len(parts) == len(clips) else "-"
                    fluid_text = f"{fluid:.3f}" if fluid and len(parts) == len(clips) else "-"
                    print(f"{name:<12} {sample_rate:>6} {len(parts):>6} {took:>9.3f} {seconds / took:>11.1f} "
                          f"{fluid_text:>12} {ratio:>17}")


if __name__ == "__main__":
    main()
