"""Metrics of a trained preset on its dataset's held-out pieces: `python -m engine evaluate flute [--data DIR]`.

Writes `metrics` into the preset's preset.json and a row into docs/presets.md. All renders here are dry (no
reverb) at the dataset's sample rate with noise seed 0, gated like engine.render, and compared with the real audio.
- reconstruction: true notes + true controls -> render; multi-scale log-spectral distance (mean |dB| difference of
  STFT magnitudes over the bins above -80 dB re full scale, FFT sizes 2048..64, hop 1/4, averaged over sizes) to
  the real audio; the same for
  the shipped `parametric` baseline preset (its default profile, same true controls).
- f0 error: median |cents| between generated and dataset f0 over the measured note frames.
- loudness error: median |dB| between frame loudness (Hann-windowed RMS, 4 frames wide) of render and real audio
  over the measured note frames where the real audio is above -60 dBFS.
- control fidelity: on held-out notes of >= 0.6 s (alone, 0.1 s from the start), each control set to 0, 0.1 .. 1
  with the other five at the note's true values; the control re-extracted from the generated parameters. Per note
  Pearson r and monotonicity (non-decreasing within 1e-3); reported as median and minimum r, share monotonic, and
  the minimum r over the reachable part of each sweep (set values within the range the note can read back).
- expression: MSE of predicted vs true controls over the held-out notes, against predicting the training mean.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from daw_bridge.files import write_text_atomic
from ..expression import extract_controls
from ..notes import CONTROL_NAMES, Note
from ..params import FRAME_RATE, frames_for
from .analysis import frame_loudness_db
from .train import load_dataset, piece_notes, piece_style

FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
SWEEP = np.linspace(0.0, 1.0, 11)
DOCS_TABLE = Path(__file__).resolve().parents[2] / "docs" / "presets.md"
TABLE_START, TABLE_END = "<!-- metrics:start -->", "<!-- metrics:end -->"


def log_spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale log-spectral distance in dB between two signals of the same length: per FFT size, the mean
    |dB difference| of Hann STFT magnitudes (0 dB = a full-scale sine, floor -80 dB) over the bins where either
    signal is above -80 dB; averaged over the sizes."""
    a_t, b_t = torch.from_numpy(np.asarray(a, dtype=np.float32)), torch.from_numpy(np.asarray(b, dtype=np.float32))
    distances = []
    for n_fft in FFT_SIZES:
        window = torch.hann_window(n_fft)
        full_scale = 0.5 * float(window.sum())
        db = [20 * torch.log10((torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs()
                                / full_scale).clamp_min(1e-4)) for x in (a_t, b_t)]
        audible = (db[0] > -80) | (db[1] > -80)
        if bool(audible.any()):
            distances.append(float((db[0] - db[1]).abs()[audible].mean()))
    return float(np.mean(distances)) if distances else 0.0


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int = 64) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular mel filters over 20 Hz .. Nyquist (HTK mel), each normalised to sum 1."""
    mel = lambda hz: 2595 * np.log10(1 + hz / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(20.0), mel(sample_rate / 2), n_mels + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bank = np.maximum(0, np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)))
    bank[bank.sum(1) == 0, np.abs(freqs[None] - centre).argmin(1)[bank.sum(1) == 0]] = 1.0
    return torch.from_numpy(bank / bank.sum(1, keepdims=True)).float()


def mel_spectral_distance(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """Like `log_spectral_distance` but on 64 mel-band powers (FFT sizes 2048..256): the random per-bin detail of
    noise averages out, so this reads closer to what differs audibly."""
    a_t, b_t = torch.from_numpy(np.asarray(a, dtype=np.float32)), torch.from_numpy(np.asarray(b, dtype=np.float32))
    distances = []
    for n_fft in FFT_SIZES[:4]:
        window = torch.hann_window(n_fft)
        full_scale = 0.5 * float(window.sum())
        bank = mel_filterbank(n_fft, sample_rate)
        db = [10 * torch.log10((bank @ (torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs()
                                         / full_scale) ** 2).clamp_min(1e-8)) for x in (a_t, b_t)]
        audible = (db[0] > -80) | (db[1] > -80)
        if bool(audible.any()):
            distances.append(float((db[0] - db[1]).abs()[audible].mean()))
    return float(np.mean(distances)) if distances else 0.0


def render_dry(synthesis, notes: list[Note], controls: torch.Tensor, n_frames: int, sample_rate: int,
               n_samples: int) -> tuple[np.ndarray, object]:
    from ..dsp import synthesize
    from ..render import note_gate

    with torch.no_grad():
        params = synthesis.generate(notes, controls, n_frames)
    audio = synthesize(params, sample_rate, n_samples, seed=0).numpy() * note_gate(notes, n_samples, sample_rate)
    return audio, params


def measured_frames(notes: list[Note], n_frames: int) -> np.ndarray:
    from ..expression import note_frames

    mask = np.zeros(n_frames, dtype=bool)
    for note in notes:
        a, b = note_frames(note, n_frames)
        mask[a:b] = True
    return mask


def resynthesize_targets(piece: dict, meta: dict, notes: list[Note]) -> np.ndarray:
    """The dataset's own frame targets rendered like a preset: the floor of the spectral distance."""
    from ..dsp import synthesize
    from ..render import note_gate
    from .train import piece_params

    n, sr = piece["audio"].shape[0], int(meta["sample_rate"])
    params = piece_params(piece, float(meta["max_hz"]))
    return synthesize(params, sr, n, seed=0).numpy() * note_gate(notes, n, sr)


def reconstruction_metrics(preset, baseline, meta: dict, test: list[dict]) -> dict:
    sr = int(meta["sample_rate"])
    ours, base, floor, mels, f0_err, loud_err = [], [], [], [], [], []
    for piece in test:
        notes, controls = piece_notes(piece), torch.from_numpy(np.asarray(piece["controls"], dtype=np.float32))
        real = np.asarray(piece["audio"], dtype=np.float32)
        n_frames = piece["f0"].shape[0]
        audio, params = render_dry(preset.synthesis, notes, controls, n_frames, sr, real.shape[0])
        base_audio, _ = render_dry(baseline.synthesis, notes, controls, n_frames, sr, real.shape[0])
        ours.append(log_spectral_distance(audio, real))
        base.append(log_spectral_distance(base_audio, real))
        resynthesis = resynthesize_targets(piece, meta, notes)
        floor.append(log_spectral_distance(resynthesis, real))
        mels.append([mel_spectral_distance(x, real, sr) for x in (audio, base_audio, resynthesis)])
        mask = measured_frames(notes, n_frames) & (piece["f0"] > 0)
        cents = 1200 * np.log2(np.maximum(params.f0.numpy(), 1e-6) / np.maximum(piece["f0"], 1e-6))
        f0_err.append(np.abs(cents[mask]))
        real_loud = frame_loudness_db(real, sr, n_frames)
        ours_loud = frame_loudness_db(audio, sr, n_frames)
        loud_mask = mask & (real_loud > -60)
        loud_err.append(np.abs(ours_loud - real_loud)[loud_mask])
    distance, baseline_distance = float(np.mean(ours)), float(np.mean(base))
    mel = np.mean(mels, 0).tolist()
    return {"spectral_distance_db": round(distance, 3), "baseline_spectral_distance_db": round(baseline_distance, 3),
            "improvement_over_baseline": round(1 - distance / baseline_distance, 3),
            "targets_resynthesis_spectral_distance_db": round(float(np.mean(floor)), 3),
            "mel_distance_db": round(mel[0], 3), "baseline_mel_distance_db": round(mel[1], 3),
            "mel_improvement_over_baseline": round(1 - mel[0] / mel[1], 3),
            "targets_resynthesis_mel_distance_db": round(mel[2], 3),
            "f0_error_cents_median": round(float(np.median(np.concatenate(f0_err))), 3),
            "loudness_error_db_median": round(float(np.median(np.concatenate(loud_err))), 3)}


def sweep_notes(test: list[dict], count: int) -> list[tuple[Note, torch.Tensor]]:
    """Up to `count` held-out notes of >= 0.6 s, evenly spread over the test pieces' notes, with true controls."""
    candidates = []
    for piece in test:
        for note, row in zip(piece_notes(piece), piece["controls"]):
            if note.duration >= 0.6:
                candidates.append((note, torch.tensor(row, dtype=torch.float32)))
    if len(candidates) > count:
        candidates = [candidates[int(i)] for i in np.linspace(0, len(candidates) - 1, count).round()]
    return candidates


def fidelity_metrics(preset, test: list[dict], count: int) -> dict:
    results = {}
    chosen = sweep_notes(test, count)
    for c, name in enumerate(CONTROL_NAMES):
        rs, reachable, monotonic = [], [], []
        for note, row in chosen:
            alone = Note(note.pitch, 0.1, 0.1 + note.duration, note.velocity, id="sweep")
            n_frames = frames_for(alone.offset + 0.1)
            measured = []
            for value in SWEEP:
                controls = row.clone()[None]
                controls[0, c] = float(value)
                with torch.no_grad():
                    params = preset.synthesis.generate([alone], controls, n_frames)
                measured.append(float(extract_controls(params, [alone], clip=False)[0, c]))
            measured = np.array(measured)
            rs.append(float(np.corrcoef(SWEEP, measured)[0, 1]) if measured.std() > 1e-9 else 0.0)
            reach = (SWEEP >= measured.min() - 1e-3) & (SWEEP <= measured.max() + 1e-3)
            if reach.sum() >= 3 and measured[reach].std() > 1e-9:
                reachable.append(float(np.corrcoef(SWEEP[reach], measured[reach])[0, 1]))
            monotonic.append(bool(np.all(np.diff(measured) >= -1e-3)))
        results[name] = {"r_median": round(float(np.median(rs)), 4), "r_min": round(float(np.min(rs)), 4),
                         "monotonic": round(float(np.mean(monotonic)), 3),
                         "r_min_reachable": round(float(np.min(reachable)), 4) if reachable else None} if rs else {}
    results["notes"] = len(chosen)
    return results


def expression_metrics(preset, train: list[dict], test: list[dict]) -> dict:
    mean = np.concatenate([np.asarray(p["controls"]) for p in train]).mean(0)
    errors, baseline = [], []
    for piece in test:
        truth = np.asarray(piece["controls"], dtype=np.float64)
        predicted = preset.expression.generate(piece_notes(piece)).numpy()
        errors.append((predicted - truth) ** 2)
        baseline.append((mean - truth) ** 2)
    errors, baseline = np.concatenate(errors), np.concatenate(baseline)
    return {"mse": round(float(errors.mean()), 5), "mse_training_mean": round(float(baseline.mean()), 5),
            "per_control_mse": {n: round(float(v), 5) for n, v in zip(CONTROL_NAMES, errors.mean(0))},
            "per_control_mse_training_mean": {n: round(float(v), 5) for n, v in zip(CONTROL_NAMES, baseline.mean(0))}}


TARGET_LUFS = -18.0  # a mezzo-forte melody renders at about this integrated loudness (ITU-R BS.1770)
REFERENCE_VELOCITY = 80  # mezzo-forte
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)


def reference_melody(pitch_range: list[int] | None) -> list[Note]:
    """The level reference: a major scale up and down (15 notes of 0.5 s, legato, velocity 80) around the middle
    of the instrument's range, from 0.5 s."""
    low, high = pitch_range or (60, 84)
    tonic = int(round((low + high) / 2 - 6))
    pitches = [tonic + step for step in MAJOR_SCALE] + [tonic + step for step in MAJOR_SCALE[-2::-1]]
    return [Note(p, 0.5 + 0.5 * i, 1.0 + 0.5 * i, REFERENCE_VELOCITY, id=f"r{i}") for i, p in enumerate(pitches)]


def level_calibration(preset, document: dict, sample_rate: int = 48000) -> dict:
    """The output gain that puts the reference mezzo-forte melody, played by the preset's own expression generator
    (reverb included), at TARGET_LUFS. -> {"lufs_unity_gain", "output_gain_db", ...}."""
    from ..notes import Clip
    from ..render import render_clips
    from .measures import loudness_lufs

    notes = reference_melody(document.get("pitch_range"))
    result = render_clips([(Clip(notes, name="reference"), preset)], sample_rate)
    current = float(document.get("output_gain_db", 0.0))
    unity = loudness_lufs(result.audio, sample_rate) - current
    return {"reference": "major scale up and down, 15 x 0.5 s legato, velocity 80, mid-range",
            "target_lufs": TARGET_LUFS, "lufs_unity_gain": round(unity, 2),
            "output_gain_db": round(TARGET_LUFS - unity, 1)}


def evaluate(name: str, data: str | None = None, fidelity_notes: int = 12, max_pieces: int | None = None,
             docs: Path | None = DOCS_TABLE) -> dict:
    """Compute all metrics for preset `name` and write them into its preset.json (and the docs table)."""
    from ..presets import find_preset, load_preset
    from daw_bridge.files import write_json_atomic

    path = find_preset(name)
    preset = load_preset(str(path))
    meta_path = path / "preset.json"
    document = json.loads(meta_path.read_text())
    data = data or document.get("training", {}).get("data")
    if not data:
        raise ValueError(f"preset {name!r} does not say its dataset: pass --data")
    meta, pieces = load_dataset(data)
    test = [pieces[i] for i in meta["splits"]["test"]][:max_pieces]
    train = [pieces[i] for i in meta["splits"]["train"]]
    if not test:
        raise ValueError(f"{data}: the test split is empty")
    # The expression generator learns the musical performances (when the dataset has them): judge it on those.
    musical_train = [pieces[i] for i in meta["splits"]["train"] if piece_style(meta, i) == "musical"] or train
    musical_test = [pieces[i] for i in meta["splits"]["test"] if piece_style(meta, i) == "musical"] or test
    torch.set_num_threads(1)
    metrics = {"data": str(data), "test_pieces": len(test),
               "test_minutes": round(sum(p["f0"].shape[0] for p in test) / FRAME_RATE / 60, 2),
               "baseline": "shipped 'parametric' preset (default profile) with the true controls"}
    metrics["reconstruction"] = reconstruction_metrics(preset, load_preset("parametric"), meta, test)
    metrics["control_fidelity"] = fidelity_metrics(preset, test, fidelity_notes)
    metrics["expression"] = expression_metrics(preset, musical_train, musical_test)
    metrics["level"] = level_calibration(preset, document)
    document["output_gain_db"] = metrics["level"]["output_gain_db"]
    metrics["targets_met"] = targets_met(metrics)
    document["metrics"] = metrics
    write_json_atomic(meta_path, document)
    if docs is not None:
        write_docs_row(docs, path.name, document)
    return metrics


def targets_met(metrics: dict) -> dict:
    rec, fid, expr = metrics["reconstruction"], metrics["control_fidelity"], metrics["expression"]
    controls = [fid[n] for n in CONTROL_NAMES if fid.get(n)]
    return {"reconstruction_40pct": rec["improvement_over_baseline"] >= 0.4,
            "f0_under_10_cents": rec["f0_error_cents_median"] < 10,
            "loudness_under_1_5_db": rec["loudness_error_db_median"] < 1.5,
            "fidelity_r_0_95_monotonic": bool(controls) and all(c["r_min"] >= 0.95 and c["monotonic"] == 1.0
                                                                 for c in controls),
            "expression_beats_mean": expr["mse"] < expr["mse_training_mean"],
            "expression_30pct_below_mean": expr["mse"] <= 0.7 * expr["mse_training_mean"]}


def docs_row(name: str, document: dict) -> str:
    m = document["metrics"]
    rec, fid, expr = m["reconstruction"], m["control_fidelity"], m["expression"]
    rows = [fid[n] for n in CONTROL_NAMES if fid.get(n)]
    reach = [r["r_min_reachable"] for r in rows if r.get("r_min_reachable") is not None]
    return (f"| {name} | {document.get('program')} | {rec['spectral_distance_db']:.2f} | "
            f"{rec['baseline_spectral_distance_db']:.2f} | {rec['targets_resynthesis_spectral_distance_db']:.2f} | "
            f"{100 * rec['improvement_over_baseline']:.0f}% | {100 * rec['mel_improvement_over_baseline']:.0f}% | "
            f"{rec['f0_error_cents_median']:.1f} | {rec['loudness_error_db_median']:.2f} | "
            f"{min(r['r_min'] for r in rows):.3f} ({min(reach) if reach else float('nan'):.3f}) | "
            f"{100 * min(r['monotonic'] for r in rows):.0f}% | {expr['mse']:.4f} / {expr['mse_training_mean']:.4f} | "
            f"{document.get('training', {}).get('steps', '?')} |")


def write_docs_row(docs: Path, name: str, document: dict) -> None:
    """Replace (or add) this preset's row in the metrics table between the markers of docs/presets.md."""
    header = ("| preset | GM | spectral dist. dB | baseline dB | targets resynth. dB | improvement | mel improvement | "
              "f0 err. cents | loudness err. dB | fidelity min r (reachable) | monotonic | "
              "expression MSE / mean-predictor | steps |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    text = docs.read_text() if docs.exists() else f"# Presets\n\n{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in text:
        text += f"\n{TABLE_START}\n{TABLE_END}\n"
    before, rest = text.split(TABLE_START, 1)
    body, after = rest.split(TABLE_END, 1)
    rows = {line.split("|")[1].strip(): line for line in body.strip().splitlines()
            if line.startswith("| ") and not line.startswith("| preset")}
    rows[name] = docs_row(name, document)
    table = "\n".join([header] + [rows[k] for k in sorted(rows)])
    write_text_atomic(docs, f"{before}{TABLE_START}\n{table}\n{TABLE_END}{after}")
