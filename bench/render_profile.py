"""Where one voice's render time goes: CPU seconds per stage (time.thread_time, so a busy machine inflates them
less than wall time), one torch thread.

Renders the soprano of the ~60 s chorale of bench/render_speed.py at 48 kHz, stage by stage as engine.render does:
expression generator, synthesis features + network, parameters from its outputs (+ legato bridge), control
projection, harmonic bank, filtered noise, gate, reverb, limiter (on the four-voice mix), writing a 24-bit WAV.
Run: .venv/bin/python bench/render_profile.py [--preset NAME ...] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine import model  # noqa: E402
from engine.dsp import FilteredNoise, Harmonic  # noqa: E402
from engine.notes import clips_from_midi  # noqa: E402
from engine.params import frames_for  # noqa: E402
from engine.presets import load_preset  # noqa: E402
from engine.render import limit, note_gate, render_clips, write_audio  # noqa: E402
from render_speed import chorale_midi  # noqa: E402


def stage_seconds(preset, notes, sample_rate: int, n_samples: int, mix: np.ndarray, tmp: Path) -> dict[str, float]:
    """CPU seconds of each stage of one voice (and of the limiter and writer on `mix`)."""
    synthesis = preset.synthesis
    times: dict[str, float] = {}

    def timed(name, fn):
        start = time.thread_time()
        value = fn()
        times[name] = time.thread_time() - start
        return value

    n_frames = frames_for(max(n_samples / sample_rate, max(n.offset for n in notes)))
    with torch.no_grad():
        controls = timed("expression generator", lambda: preset.expression.generate(notes).clamp(0, 1))
        if isinstance(synthesis, model.NeuralSynthesis):
            def network():
                inputs = model.reachable_inputs(notes, controls, synthesis.max_hz)
                features = model.synthesis_features(notes, inputs, n_frames)
                return model.decode(synthesis.net(features[None])[0], synthesis.net.n_harmonics)

            out = timed("synthesis network", network)
            params = timed("parameters + legato bridge", lambda: model.bridge_legato(
                model.raw_to_params(out, notes, n_frames, synthesis.max_hz), notes) if synthesis.bridge else
                model.raw_to_params(out, notes, n_frames, synthesis.max_hz))
            params = timed("control projection", lambda: model.project_controls(
                params, notes, controls, synthesis.vibrato_rate_hz))
        else:
            params = timed("parametric generator", lambda: synthesis.generate(notes, controls, n_frames))
        dry = torch.zeros(n_samples)
        timed("harmonic bank", lambda: Harmonic().get_signal(params, sample_rate, 0, n_samples, dry))
        timed("filtered noise", lambda: FilteredNoise().get_signal(params, sample_rate, 0, n_samples, 1, dry))
    dry = dry.numpy()
    timed("gate", lambda: dry.__imul__(note_gate(notes, n_samples, sample_rate)))
    timed("reverb", lambda: preset.reverb.get_signal(dry, sample_rate))
    timed("limiter (4-voice mix)", lambda: limit(mix, sample_rate))
    timed("write 24-bit WAV (4-voice mix)", lambda: write_audio(tmp / "mix.wav", mix, sample_rate, "24"))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="presets (default: flute, violin, bassoon)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-rate", type=int, default=48000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        clips = clips_from_midi(chorale_midi(Path(tmp) / "chorale.mid"))
        notes = clips[0].voices()[0]
        for name in args.preset or ["flute", "violin", "bassoon"]:
            preset = load_preset(name)
            mix = render_clips([(c, preset) for c in clips], args.sample_rate).audio
            runs = [stage_seconds(preset, notes, args.sample_rate, mix.shape[0], mix, Path(tmp))
                    for _ in range(args.repeats)]
            best = {stage: min(run[stage] for run in runs) for stage in runs[0]}
            voice = sum(v for k, v in best.items() if "mix" not in k)
            print(f"{name}: one voice ({len(notes)} notes, {mix.shape[0] / args.sample_rate:.1f} s at "
                  f"{args.sample_rate} Hz), CPU s, best of {args.repeats}")
            for stage, seconds in best.items():
                share = f"{100 * seconds / voice:5.1f} %" if "mix" not in stage else "      "
                print(f"  {stage:<32} {seconds:7.3f}  {share}")
            print(f"  {'one voice in all':<32} {voice:7.3f}")


if __name__ == "__main__":
    main()
