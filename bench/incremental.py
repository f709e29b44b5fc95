"""Incremental re-render latency: one edited note in a 3-minute clip, against a full render in the same process.

    .venv/bin/python bench/incremental.py [--seconds 180] [--rate 48000] [--edits 12] [--threads 1]

Prints a markdown table (docs/benchmarks.md, "## Service"): the full render, then single-note edits of each control
at spread-out positions (median and worst), some checked against a full render of the edited clip (max abs
difference), and the time to write the 3-minute float WAV: in full, and as the service does after an incremental
render (a copy of the previous file with the changed samples patched in).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.incremental import RenderCache  # noqa: E402
from engine.notes import CONTROL_NAMES, Clip, Note  # noqa: E402
from engine.presets import load_preset  # noqa: E402
from engine.render import render_clip, write_audio  # noqa: E402
from engine.service.output import patch_wav as _patch_wav  # noqa: E402


def three_minute_clip(seconds: float, seed: int = 0) -> Clip:
    """A melody (legato runs and rests, 0.25-1 s notes) with a bass note under every third: 2 voices."""
    rng = np.random.default_rng(seed)
    notes, t, i = [], 0.0, 0
    while t < seconds - 2:
        length = float(rng.choice([0.25, 0.5, 0.75, 1.0]))
        notes.append(Note(int(rng.integers(60, 80)), t, t + length, int(rng.integers(50, 120)), f"m{i}"))
        if i % 3 == 0:
            notes.append(Note(int(rng.integers(45, 58)), t, t + length, 80, f"b{i}"))
        t += length + float(rng.choice([0.0, 0.0, 0.05, 0.25]))
        i += 1
    return Clip(notes).checked()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--edits", type=int, default=12, help="single-note edits (spread over the clip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in the service)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = load_preset("parametric")
    clip = three_minute_clip(args.seconds)
    cache = RenderCache(max_bytes=2 ** 31)

    started = time.perf_counter()
    first = cache.render("bench", clip, preset, args.rate)
    full_seconds = time.perf_counter() - started
    controls = dict(first.controls)

    rng = np.random.default_rng(1)
    rows = []
    for k in range(args.edits):
        note = clip.notes[int((k + 0.5) / args.edits * len(clip.notes))]
        control = k % len(CONTROL_NAMES)
        row = list(controls[note.id])
        row[control] = float(np.clip(row[control] + rng.choice([-0.3, 0.3]), 0.0, 1.0))
        controls[note.id] = tuple(row)
        edited = Clip([replace(n, controls=controls[n.id]) for n in clip.notes]).checked()
        started = time.perf_counter()
        rendered = cache.render("bench", edited, preset, args.rate)
        seconds = time.perf_counter() - started
        assert rendered.mode == "incremental"
        check = k % 4 == 0  # a full render per check: only some
        diff = float(np.abs(rendered.audio - render_clip(edited, preset, args.rate).audio).max()) if check else None
        rows.append((CONTROL_NAMES[control], note.id, seconds, len(rendered.rerendered), diff))

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_audio(Path(folder) / "x.wav", first.audio, args.rate, "float")
        write_seconds = time.perf_counter() - started
        started = time.perf_counter()  # what the service does after an incremental render: copy + patch
        assert _patch_wav(Path(folder) / "x.wav", Path(folder) / "y.wav", rendered.audio, *rendered.changed)
        patch_seconds = time.perf_counter() - started

    latencies = [r[2] for r in rows]
    print(f"clip: {len(clip.notes)} notes, {len(clip.voices())} voices, {first.duration:.1f} s at {args.rate} Hz, "
          f"torch threads {args.threads}\n")
    print("| edit | note | re-render ms | notes re-made | max abs diff to full |")
    print("|---|---|---|---|---|")
    for name, note_id, seconds, remade, diff in rows:
        print(f"| {name} | {note_id} | {seconds * 1000:.1f} | {remade} | {'-' if diff is None else f'{diff:.1e}'} |")
    print(f"\nfull render: {full_seconds:.2f} s; incremental median {statistics.median(latencies) * 1000:.1f} ms, "
          f"worst {max(latencies) * 1000:.1f} ms (full / median = {full_seconds / statistics.median(latencies):.0f}x); "
          f"writing the {first.duration:.0f} s float WAV: {write_seconds * 1000:.1f} ms in full, "
          f"{patch_seconds * 1000:.1f} ms as a patched copy of the previous render (what the service does)")


if __name__ == "__main__":
    main()
