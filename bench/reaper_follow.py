"""REAPER scripts in the host simulator against a real engine: first render, a lane edit in follow mode, and how
many REAPER API calls follow mode's checks cost (the scripts' cost inside REAPER grows with it).

A melody of N notes (default 64, 8th notes with 8th rests at 120 bpm) in one MIDI item; the `brightness` point of
note N/2 is raised to 0.95 while follow mode runs (debounce 0.3 s, checks every 0.05 s).
Run: .venv/bin/python bench/reaper_follow.py [--notes 64] [--rate 44100]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402

import test_reaper  # noqa: E402
from engine.service import Service, ServiceConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=64)
    parser.add_argument("--rate", type=int, default=44100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="reaper-bench-"))
    service = Service(ServiceConfig(port=0, render_dir=tmp / "renders")).start()
    try:
        session = test_reaper.Session(tmp, service.port)
        sim = session.sim
        sim.project.sample_rate = args.rate
        track = sim.add_track("Melody")
        melody = [(i, i + 0.5, 60 + (i * 5) % 17, 100) for i in range(args.notes)]
        item = sim.add_midi_item(track, 0, args.notes + 2, melody)
        sim.select_only(item)
        started = time.monotonic()
        session.run(test_reaper.RENDER, timeout=600)
        first = time.monotonic() - started
        (render,) = session.render_items("Melody")
        before, rate = soundfile.read(render.take.source.path, dtype="float32")
        session.start(test_reaper.FOLLOW)
        session.run_for(0.5)
        def scan_calls(since: int) -> int:  # API calls made since, minus the loop's own per-cycle ext-state calls
            return sum(1 for name in sim.calls[since:] if name not in ("GetExtState", "SetExtState"))

        calls = len(sim.calls)
        sim.changed()  # one follow-mode check of the item, nothing to re-render
        session.run_for(0.2)
        per_check = scan_calls(calls)
        edited = args.notes // 2
        started, calls = time.monotonic(), len(sim.calls)
        sim.set_point(sim.lanes(track)["brightness"], edited * 0.5, 0.95)
        session.wait_for("follow: re-rendering", timeout=600)
        finding = scan_calls(calls)
        session.wait_for("follow: rendered", timeout=600)
        latency = time.monotonic() - started
        after, _ = soundfile.read(render.take.source.path, dtype="float32")
        changed = np.flatnonzero(np.abs(after - before) > 1e-6) / rate
        print(f"{args.notes} notes, {render.length:.1f} s at {rate} Hz")
        print(f"first render (action run to audio placed): {first:.2f} s")
        print(f"lane edit -> re-rendered audio placed: {latency:.2f} s (debounce 0.3 s); "
              f"{sim.console_text().splitlines()[-1].split(': ', 2)[-1]}")
        print(f"edited note {edited * 0.5:.3f}-{edited * 0.5 + 0.25:.3f} s; samples changed from {changed[0]:.3f} "
              f"to {changed[-1]:.3f} s ({100 * changed.size / after.size:.1f}% of the file)")
        print(f"REAPER API calls of a follow-mode check (run after a project change, or every 2 s): {per_check} when "
              f"the item did not change; {finding} from the lane edit to the re-render request "
              f"({finding / args.notes:.1f} per note: the request is rebuilt)")
        sim.terminate_all()
    finally:
        service.stop()


if __name__ == "__main__":
    main()
