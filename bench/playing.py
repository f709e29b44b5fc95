"""Does the default performance play like a musician? Level over time against the sampled instrument.

Held-out folk melodies (never Bach chorales; `bench/heldout.py`), mezzo-forte (velocity 80), legato as written, at
48 kHz: (a) the preset with its own expression generator against (c) FluidSynth with its training soundfont
FluidR3_GM, on the same MIDI. From 20 ms RMS levels every 10 ms (engine/training/measures.py), per preset, pooled
over the melodies' notes:
- attack: median time from a note's onset to the first time its level reaches 6 dB below the note's maximum;
- dip: median level dip where consecutive notes touch (gap < 30 ms): the lower of the two notes' sustain levels
  (median over their middle 60 %) minus the minimum level within 50 ms of the join;
- within-note std: median standard deviation of the level (dB) over the middle 60 % of notes of >= 0.4 s;
- loudness: integrated loudness (ITU-R BS.1770, pyloudnorm), median over melodies.
Targets: attack <= 2 x (c)'s + 30 ms; dip <= (c)'s + 6 dB; within-note std <= (c)'s + 3 dB; loudness within 3 LU
of -18 LUFS.

Run: .venv/bin/python bench/playing.py [--presets violin,flute] [--melodies N] [--json FILE] [--plot DIR]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import heldout  # bench/heldout.py (this folder is sys.path[0]); it puts the repository root on sys.path

from engine.training import measures  # noqa: E402

ATTACK_FACTOR, ATTACK_SLACK = 2.0, 0.030  # (a) <= 2 x (c) + 30 ms
DIP_SLACK_DB = 6.0
STD_SLACK_DB = 3.0
LOUDNESS_TARGET, LOUDNESS_TOLERANCE = -18.0, 3.0


def note_measures(audio: np.ndarray, take: heldout.Take, sample_rate: int) -> dict:
    levels = measures.level_curve(audio, sample_rate)
    return {
        "attacks": measures.note_attacks(levels, take.onsets, take.offsets),
        "dips": measures.legato_dips(levels, take.onsets, take.offsets),
        "stds": measures.within_note_std(levels, take.onsets, take.offsets),
        "lufs": measures.loudness_lufs(audio, sample_rate),
    }


def median(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float("nan")


def measure_preset(renders: list[heldout.Renders]) -> tuple[dict, dict]:
    sr = renders[0].sample_rate
    pooled = {letter: {"attacks": [], "dips": [], "stds": [], "lufs": []} for letter in "ac"}
    per_melody = []
    for r in renders:
        row = {"melody": r.take.melody.key, "transpose": r.take.transpose}
        for letter in "ac":
            m = note_measures(r.audio[letter], r.take, sr)
            for k in ("attacks", "dips", "stds"):
                pooled[letter][k].extend(m[k].tolist())
            pooled[letter]["lufs"].append(m["lufs"])
            row[letter] = {"attack_ms": 1000 * median(m["attacks"]), "dip_db": median(m["dips"]),
                           "std_db": median(m["stds"]), "lufs": m["lufs"]}
        per_melody.append(row)
    out = {}
    for letter in "ac":
        p = pooled[letter]
        out[letter] = {"attack_ms": 1000 * median(p["attacks"]), "dip_db": median(p["dips"]),
                       "std_db": median(p["stds"]), "lufs": median(p["lufs"]),
                       "notes": len(p["attacks"]), "joins": len(p["dips"]), "long_notes": len(p["stds"])}
    a, c = out["a"], out["c"]
    out["checks"] = {
        "attack": a["attack_ms"] <= ATTACK_FACTOR * c["attack_ms"] + 1000 * ATTACK_SLACK,
        "dip": a["dip_db"] <= c["dip_db"] + DIP_SLACK_DB,
        "within_note_std": a["std_db"] <= c["std_db"] + STD_SLACK_DB,
        "loudness": abs(a["lufs"] - LOUDNESS_TARGET) <= LOUDNESS_TOLERANCE,
    }
    out["per_melody"] = per_melody
    attack_marks = {letter: renders[0].take.onsets
                    + np.nan_to_num(note_measures(renders[0].audio[letter], renders[0].take, sr)["attacks"])
                    for letter in "ac"}
    return out, attack_marks


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def table(results: dict) -> str:
    lines = ["| preset | attack ms (a) | (c) | ok | dip dB (a) | (c) | ok | within-note std dB (a) | (c) | ok "
             "| LUFS (a) | (c) | ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        a, c, k = r["a"], r["c"], r["checks"]
        lines.append(f"| {name} | {a['attack_ms']:.0f} | {c['attack_ms']:.0f} | {yes(k['attack'])} "
                     f"| {a['dip_db']:.1f} | {c['dip_db']:.1f} | {yes(k['dip'])} "
                     f"| {a['std_db']:.1f} | {c['std_db']:.1f} | {yes(k['within_note_std'])} "
                     f"| {a['lufs']:.1f} | {c['lufs']:.1f} | {yes(k['loudness'])} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = heldout.common_arguments(__doc__.splitlines()[0]).parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    presets = heldout.parse_presets(args.presets)
    heldout.check_soundfonts()
    started = time.perf_counter()
    melodies = heldout.load_melodies(args.melodies)
    results = {}
    for name in presets:
        t0 = time.perf_counter()
        renders = heldout.render_all(name, melodies, args.sample_rate, "ac", Path(args.cache))
        results[name], marks = measure_preset(renders)
        if args.plot:
            heldout.plot_comparison(Path(args.plot) / f"playing-{name}.png", f"playing: {name} (v: attack reached)",
                                    renders[0], marks=marks)
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    counts = next(iter(results.values()))["a"]
    print("melodies: " + "; ".join(f"{m['melody']} ({m['title']}, {m['seconds']} s)"
                                    for m in heldout.melody_table(melodies)))
    print(f"(a) preset vs (c) FluidR3 on the same MIDI; medians over {counts['notes']} notes, {counts['joins']} "
          f"legato joins, {counts['long_notes']} notes >= 0.4 s (per preset); loudness: median over melodies")
    print(table(results))
    passed = sum(all(r["checks"].values()) for r in results.values())
    print(f"presets meeting every target: {passed} of {len(results)}  ({time.perf_counter() - started:.0f} s)")
    if args.json:
        heldout.write_json(args.json, {
            "benchmark": "playing", "command": " ".join([Path(sys.executable).name, "bench/playing.py"] + sys.argv[1:]),
            "sample_rate": args.sample_rate, "melodies": heldout.melody_table(melodies),
            "targets": {"attack_factor": ATTACK_FACTOR, "attack_slack_ms": 1000 * ATTACK_SLACK,
                        "dip_slack_db": DIP_SLACK_DB, "std_slack_db": STD_SLACK_DB,
                        "loudness_lufs": LOUDNESS_TARGET, "loudness_tolerance_lu": LOUDNESS_TOLERANCE},
            "presets": results})


if __name__ == "__main__":
    main()
