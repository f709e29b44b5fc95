"""Do the presets sound like the instrument? Timbre against the sampled instrument they were trained on.

Held-out folk melodies (never Bach chorales; `bench/heldout.py`) rendered at 48 kHz as (a) the preset with its own
expression, (b) the `parametric` baseline, (c) FluidSynth with the training soundfont FluidR3_GM (the reference) and
(d) FluidSynth with another sample library, MuseScore_General (how far apart two real sampled instruments are).
Per preset: timbre distance (engine/training/measures.py `timbre_distance`: mean L1 in dB between level-normalised
64-band log-mel frames, 40 Hz-21.6 kHz, frame by frame, frames where (c) is within 40 dB of its loudest) of (a), (b)
and (d) to (c), averaged over the melodies; energy above 8 kHz in dB of the total, of (a) and (c), over all melodies.
Targets: (a) <= 1.5 x (d); (a) at least 30 % below (b); (a)'s energy above 8 kHz within 6 dB of (c)'s.

Run: .venv/bin/python bench/realism.py [--presets violin,flute] [--melodies N] [--json FILE] [--plot DIR]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import heldout  # bench/heldout.py (this folder is sys.path[0]); it puts the repository root on sys.path

from engine.training import measures  # noqa: E402

TIMBRE_VS_OTHER_LIBRARY = 1.5  # (a) <= this x (d)
TIMBRE_VS_BASELINE = 0.30  # (a) at least this fraction below (b)
HIGH_BAND_DB = 6.0
HIGH_HZ = 8000.0


def measure_preset(renders: list[heldout.Renders]) -> dict:
    sr = renders[0].sample_rate
    per_melody = []
    for r in renders:
        row = {"melody": r.take.melody.key, "transpose": r.take.transpose}
        for letter in "abd":
            row[f"timbre_{letter}"] = measures.timbre_distance(r.audio[letter], r.audio["c"], sr)
        for letter in "ac":
            row[f"high_db_{letter}"] = measures.band_energy_db(r.audio[letter], sr, HIGH_HZ)
        per_melody.append(row)
    out = {f"timbre_{x}": float(np.mean([row[f"timbre_{x}"] for row in per_melody])) for x in "abd"}
    for letter in "ac":  # pooled: the energy of all melodies together
        out[f"high_db_{letter}"] = measures.band_energy_db(np.concatenate([r.audio[letter] for r in renders]), sr,
                                                           HIGH_HZ)
    out["checks"] = {
        "timbre_within_1.5x_other_library": out["timbre_a"] <= TIMBRE_VS_OTHER_LIBRARY * out["timbre_d"],
        "timbre_30pct_below_baseline": out["timbre_a"] <= (1 - TIMBRE_VS_BASELINE) * out["timbre_b"],
        "high_band_within_6db": abs(out["high_db_a"] - out["high_db_c"]) <= HIGH_BAND_DB,
    }
    out["per_melody"] = per_melody
    return out


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def table(results: dict) -> str:
    lines = ["| preset | timbre (a) preset | (b) parametric | (d) MuseScore | (a) <= 1.5x(d) | (a) >= 30% below (b) "
             "| >8 kHz (a) dB | >8 kHz (c) dB | within 6 dB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        c = r["checks"]
        lines.append(f"| {name} | {r['timbre_a']:.2f} | {r['timbre_b']:.2f} | {r['timbre_d']:.2f} "
                     f"| {yes(c['timbre_within_1.5x_other_library'])} | {yes(c['timbre_30pct_below_baseline'])} "
                     f"| {r['high_db_a']:.1f} | {r['high_db_c']:.1f} | {yes(c['high_band_within_6db'])} |")
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
        renders = heldout.render_all(name, melodies, args.sample_rate, "abcd", Path(args.cache))
        results[name] = measure_preset(renders)
        if args.plot:
            heldout.plot_comparison(Path(args.plot) / f"realism-{name}.png", f"realism: {name}", renders[0])
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print("melodies: " + "; ".join(f"{m['melody']} ({m['title']}, {m['seconds']} s)"
                                    for m in heldout.melody_table(melodies)))
    print("timbre distance to (c) FluidR3 (dB per mel band, lower is closer); energy above 8 kHz in dB of the total")
    print(table(results))
    passed = sum(all(r["checks"].values()) for r in results.values())
    print(f"presets meeting every target: {passed} of {len(results)}  ({time.perf_counter() - started:.0f} s)")
    if args.json:
        heldout.write_json(args.json, {
            "benchmark": "realism", "command": " ".join([Path(sys.executable).name, "bench/realism.py"] + sys.argv[1:]),
            "sample_rate": args.sample_rate, "melodies": heldout.melody_table(melodies),
            "targets": {"timbre_a_max_x_d": TIMBRE_VS_OTHER_LIBRARY, "timbre_a_below_b_fraction": TIMBRE_VS_BASELINE,
                        "high_band_db": HIGH_BAND_DB, "high_hz": HIGH_HZ},
            "presets": results})


if __name__ == "__main__":
    main()
