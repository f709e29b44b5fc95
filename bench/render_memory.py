"""Peak memory (VmHWM of /proc/<pid>/status) of a render vs clip length: the CLI (`python -m engine render`) and the
engine service (`python -m engine serve`, one render sent by a client), each measurement in a fresh process.

Clips: the four-voice chorale of bench/render_speed.py (60 s) repeated to 3 and 30 minutes, one preset for all
voices (default bassoon: full band, 100 harmonics), at 48 and 96 kHz.
Run: .venv/bin/python bench/render_memory.py [--minutes 3 30] [--rates 48000 96000] [--preset bassoon]
     [--engine-root DIR]   (measure another checkout's engine, e.g. the code before a change)
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CLI_CHILD = """
import sys
from engine.cli import main
code = main(sys.argv[1:])
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print("VmHWM", int(status["VmHWM"].split()[0]))
sys.exit(code)
"""


def long_chorale(path: Path, minutes: float) -> Path:
    """The 60 s chorale repeated back to back for `minutes`, as one MIDI file (four tracks)."""
    import pretty_midi
    from render_speed import chorale_midi

    one = pretty_midi.PrettyMIDI(str(chorale_midi(path.with_suffix(".one.mid"))))
    period = max(n.end for track in one.instruments for n in track.notes) + 0.5
    out = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    for track in one.instruments:
        copy = pretty_midi.Instrument(program=track.program, name=track.name)
        for k in range(math.ceil(minutes * 60 / period)):
            copy.notes += [pretty_midi.Note(n.velocity, n.pitch, n.start + k * period, n.end + k * period)
                           for n in track.notes]
        out.instruments.append(copy)
    out.write(str(path))
    return path


def cli_peak(engine_root: Path, midi: Path, preset: str, rate: int, out: Path) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of `python -m engine render` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(engine_root)}
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", CLI_CHILD, "render", str(midi), "-o", str(out), "--preset", preset,
                          "--sample-rate", str(rate), "--quiet"], cwd=engine_root, env=env, capture_output=True,
                         text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    peak = int(run.stdout.split("VmHWM")[-1].split()[0])
    return peak / 1024, time.perf_counter() - started


def service_peak(engine_root: Path, midi: Path, preset: str, rate: int, work: Path) -> tuple[float, float, float]:
    """(idle peak RSS MiB, peak RSS MiB after the render, seconds) of a fresh engine service rendering the clip."""
    from daw_bridge import protocol as p
    from daw_bridge.client import EngineClient
    from engine.notes import clips_from_midi
    from service_roundtrip import memory

    notes = [{"id": f"t{i}-{n.id}", "pitch": n.pitch, "onset": n.onset, "offset": n.offset, "velocity": n.velocity}
             for i, clip in enumerate(clips_from_midi(midi)) for n in clip.notes]
    port_file = work / "port"
    port_file.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(engine_root)}
    engine = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", "0", "--port-file", str(port_file),
                               "--render-dir", str(work / "renders"), "--log-level", "warning"], cwd=engine_root,
                              env=env)
    try:
        while not port_file.exists():
            time.sleep(0.05)
        with EngineClient(port=int(port_file.read_text()), timing=p.Timing(connect_timeout=60)) as client:
            client.load(preset)
            idle = memory(engine.pid)[1]
            started = time.perf_counter()
            client.render("memory", preset, notes, rate, timeout=7200)
            seconds = time.perf_counter() - started
            return idle, memory(engine.pid)[1], seconds
    finally:
        engine.terminate()
        engine.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0, 30.0])
    parser.add_argument("--rates", type=int, nargs="+", default=[48000, 96000])
    parser.add_argument("--preset", default="bassoon")
    parser.add_argument("--modes", nargs="+", default=["cli", "service"], choices=["cli", "service"])
    parser.add_argument("--engine-root", type=Path, default=ROOT, help="the checkout whose engine is measured")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddsp-memory-"))
    try:
        print(f"engine {args.engine_root}; preset {args.preset}; four voices; peak RSS (VmHWM) in MiB, each in a "
              f"fresh process\n")
        print("| clip | rate | mode | peak RSS MiB | idle peak MiB | render s |")
        print("|---|---|---|---|---|---|")
        for minutes in args.minutes:
            midi = long_chorale(work / f"chorale-{minutes:g}min.mid", minutes)
            for rate in args.rates:
                for mode in args.modes:
                    if mode == "cli":
                        peak, seconds = cli_peak(args.engine_root, midi, args.preset, rate, work / "out.wav")
                        idle = "-"
                    else:
                        idle_mb, peak, seconds = service_peak(args.engine_root, midi, args.preset, rate, work)
                        idle = f"{idle_mb:.0f}"
                    print(f"| {minutes:g} min | {rate} | {mode} | {peak:.0f} | {idle} | {seconds:.0f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
