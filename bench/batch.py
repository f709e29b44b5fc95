"""Files per minute of `python -m engine batch`: in one process, on the local process pool and on a local Ray, on this
machine, with the ratios printed in the same run (machines here are noisy: compare the ratios).

The library: the first `--melodies N` folk tunes of music21's Essen collection (essenFolksong/altdeu10, tunes 1..N,
monophonic), written as MIDI the way bench/heldout.py writes its held-out melodies (96 quarter notes a minute,
velocity 80, 0.5 s lead-in, moved by octaves into the flute's range), rendered with `--presets` at 48 kHz. Each
configuration runs `python -m engine batch` as a user would (a fresh process, start-up and Ray start included) into
a fresh output tree; then the same command again, which finds every output done and renders nothing.
Run: .venv/bin/python bench/batch.py [--melodies 12] [--presets flute,clarinet] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import heldout  # noqa: E402
from engine.runner import default_jobs  # noqa: E402

COLLECTION = "essenFolksong/altdeu10"


def write_library(folder: Path, n: int) -> list[float]:
    """n folk tunes as MIDI files in folder (flute program); -> their lengths in seconds."""
    tunes = tuple((COLLECTION, k) for k in range(1, n + 1))
    seconds = []
    for k, melody in enumerate(heldout.load_melodies(n, tunes), start=1):
        take = heldout.place(melody, "flute")
        heldout.write_midi(folder / f"tune{k:02d}.mid", [(take, 0.0)], program=73)
        seconds.append(take.seconds)
    return seconds


def run_batch(library: Path, out: Path, presets: str, options: list[str]) -> float:
    """Wall seconds of one `python -m engine batch` (which must succeed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "engine", "batch", str(library), "--presets", presets, "--out",
                             str(out), "--sample-rate", "48000", "-q", *options], capture_output=True, text=True,
                            env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"batch {' '.join(options)} failed: {result.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--melodies", type=int, default=12)
    parser.add_argument("--presets", default="flute,clarinet")
    parser.add_argument("--jobs", type=int, default=default_jobs())
    args = parser.parse_args()
    n_presets = len(args.presets.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        library = Path(tmp) / "library"
        library.mkdir()
        seconds = write_library(library, args.melodies)
        files = len(seconds) * n_presets
        print(f"library: {len(seconds)} tunes, {sum(seconds):.0f} s of music ({min(seconds):.0f}-{max(seconds):.0f} s "
              f"each) x {n_presets} presets ({args.presets}) = {files} files at 48 kHz; {args.jobs} jobs, "
              f"{default_jobs()} cores")
        configs = [("one process (--jobs 1)", ["--jobs", "1"], 1),
                   (f"local pool (--jobs {args.jobs})", ["--jobs", str(args.jobs)], args.jobs),
                   (f"local Ray (--ray --jobs {args.jobs})", ["--ray", "--jobs", str(args.jobs)], args.jobs)]
        rates = {}
        for name, options, cores in configs:
            out = Path(tmp) / f"out-{len(rates)}"
            wall = run_batch(library, out, args.presets, options)
            again = run_batch(library, out, args.presets, options)
            rates[name] = files / wall * 60
            print(f"{name:<28} {wall:7.1f} s  {rates[name]:6.1f} files/min  {rates[name] / cores:6.1f} files/min/core"
                  f"  {sum(seconds) * n_presets / wall:5.1f}x real time   re-run (all done) {again:5.1f} s   "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
            if cores == 1:
                peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                print(f"{'':<28} peak RSS of the rendering process {peak:.0f} MB", flush=True)
        base = rates[configs[0][0]]
        print("ratios to one process: " + ", ".join(f"{name} {rate / base:.2f}x" for name, rate in rates.items()))


if __name__ == "__main__":
    main()
