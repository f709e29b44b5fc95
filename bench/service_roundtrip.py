"""Engine service round trips and memory, with the engine as a separate process (`python -m engine serve`).

    .venv/bin/python bench/service_roundtrip.py [--repeats 5] [--presets-path DIR ...] [--neural-copies PRESET_DIR]

Measures, through real UDP on 127.0.0.1 (docs/benchmarks.md, "## Service"):
- a 200-note clip (2 voices, 48 kHz): send -> file ready, split into the engine's render time (dequeue to file
  written, from /ddsp/done) and the rest (upload, acks, queueing, replies); then fetching the controls;
- one edited note of that clip and of a 3-minute clip (incremental), the same split;
- the engine's resident memory (VmRSS, and the peak VmHWM) with every preset found loaded, after rendering with each.
`--neural-copies DIR` loads six copies of one neural preset folder under different names, to measure six neural
presets when fewer exist.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from daw_bridge import protocol as p  # noqa: E402
from daw_bridge.client import EngineClient  # noqa: E402


def melody(n_notes: int, seed: int = 0) -> list[dict]:
    from incremental import three_minute_clip

    clip = three_minute_clip(3600.0, seed)
    return [{"id": n.id, "pitch": n.pitch, "onset": n.onset, "offset": n.offset, "velocity": n.velocity}
            for n in clip.notes[:n_notes]]


def three_minutes() -> list[dict]:
    from incremental import three_minute_clip

    return [{"id": n.id, "pitch": n.pitch, "onset": n.onset, "offset": n.offset, "velocity": n.velocity}
            for n in three_minute_clip(180.0).notes]


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))


def round_trip(client: EngineClient, clip_id: str, notes: list[dict], rate: int = 48000) -> dict:
    times = {}
    started = time.perf_counter()

    def listener(session, event):
        if event == "fetching":
            times["done"] = time.perf_counter()

    session = client.start_render(clip_id, "parametric", notes, rate)
    session.listener = listener
    result = client.wait(session, 600).result
    finished = time.perf_counter()
    total = times["done"] - started
    return {"total": total, "render": result.render_seconds, "transport": total - result.render_seconds,
            "fetch": finished - times["done"], "mode": result.mode, "result": result}


def edited(notes: list[dict], controls: dict, index: int, control: int) -> list[dict]:
    out = [{**n, "controls": controls[n["id"]]} for n in notes]
    row = list(out[index]["controls"])
    row[control] = 1.0 - row[control]
    out[index]["controls"] = row
    controls[out[index]["id"]] = tuple(row)
    return out


def median_row(name: str, runs: list[dict]) -> str:
    def ms(key):
        return f"{1000 * statistics.median(r[key] for r in runs):.1f}"
    return f"| {name} | {runs[0]['mode']} | {ms('total')} | {ms('render')} | {ms('transport')} | {ms('fetch')} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets-path", action="append", default=[], help="extra preset folders")
    parser.add_argument("--neural-copies", metavar="PRESET_DIR", help="load 6 copies of this neural preset")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddsp-bench-"))
    paths = list(args.presets_path)
    if args.neural_copies:
        copies = work / "copies"
        for i in range(6):
            shutil.copytree(args.neural_copies, copies / f"copy{i + 1}")
        paths.append(str(copies))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DDSP_PRESETS_PATH": os.pathsep.join(paths)}
    from engine.presets import list_presets  # noqa: E402  (after the path is known)

    os.environ["DDSP_PRESETS_PATH"] = env["DDSP_PRESETS_PATH"]
    names = [info["name"] for info in list_presets()]
    port_file = work / "port"
    engine = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", "0", "--port-file", str(port_file),
                               "--render-dir", str(work / "renders"), "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        while not port_file.exists():
            time.sleep(0.05)
        with EngineClient(port=int(port_file.read_text()), timing=p.Timing(connect_timeout=60)) as client:
            idle = memory(engine.pid)
            for name in names:
                client.load(name)
                client.render(f"mem-{name}", name, melody(20), 48000)
            loaded = memory(engine.pid)
            notes = melody(200)
            full = [round_trip(client, f"full{i}", notes) for i in range(args.repeats)]
            controls = dict(full[-1]["result"].controls)
            one = [round_trip(client, f"full{args.repeats - 1}", edited(notes, controls, 20 + 30 * i, i % 6))
                   for i in range(args.repeats)]
            long_notes = three_minutes()
            pings = []
            with EngineClient(port=client.address[1]) as other:  # the network thread answers during a render
                session = client.start_render("busy", "parametric", long_notes, 48000)
                while not session.finished:
                    started = time.perf_counter()
                    other.ping(10)
                    pings.append(time.perf_counter() - started)
                    client.pump(0.05)
            long_full = round_trip(client, "three-minutes", long_notes)
            controls = dict(long_full["result"].controls)
            long_one = [round_trip(client, "three-minutes", edited(long_notes, controls, 15 + 60 * i, i % 6))
                        for i in range(args.repeats)]
            after_renders = memory(engine.pid)
        print(f"engine: separate process, 1 worker; {args.repeats} runs each, medians; 200-note clip "
              f"{notes[-1]['offset']:.1f} s, 3-minute clip {len(long_notes)} notes; 48 kHz\n")
        print("| request | mode | send -> file ready ms | render ms | transport + queue ms | fetch controls ms |")
        print("|---|---|---|---|---|---|")
        print(median_row("200 notes", full))
        print(median_row("200 notes, one note edited", one))
        print(median_row("3 minutes (332 notes), first render", [long_full]))
        print(median_row("3 minutes, one note edited", long_one))
        print(f"\nping while a 3-minute clip renders in full: median {1000 * statistics.median(pings):.1f} ms, worst "
              f"{1000 * max(pings):.1f} ms over {len(pings)} pings")
        print(f"\nengine memory (MiB, RSS / peak RSS): idle after start {idle[0]:.0f} / {idle[1]:.0f}; with "
              f"{len(names)} presets loaded, each used for a 20-note render ({', '.join(names)}): "
              f"{loaded[0]:.0f} / {loaded[1]:.0f}; after all the renders above (incremental state of their clips "
              f"cached) {after_renders[0]:.0f} / {after_renders[1]:.0f}")
    finally:
        engine.terminate()
        engine.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
