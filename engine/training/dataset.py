"""Training data for neural instrument presets: aligned notes, frame-level synthesis-parameter targets and the six
controls per note, from real music rendered by FluidSynth (here) or from the user's own monophonic recordings
(engine.training.recordings, same format).

Format (a contract with the trainer; see docs/dataset.md):
- `<out>/meta.json`: format "ddsp-dataset", version 1, instrument, program, source ("soundfont"|"recordings"),
  soundfont, sample_rate, max_hz, frame_rate, pitch_range, splits {"train": [ids], "test": [ids]}, coverage per
  control over the train notes, seed, and what was measured while building (per piece, f0 check, resynthesis
  distance). Written last: a folder without it is an incomplete build (run the same command again to resume).
- `<out>/pieces/<id>.npz`: audio (n,), f0 (F,), amplitude (F,), harmonics (F, 60), noise (F, 65), notes (n, 4)
  [pitch, onset s, offset s, velocity], controls (n, 6), loudness_db (F,); float32, F frames at 250/s covering
  the audio. `<out>/pieces/<id>.json`: what was measured on that piece. Both written atomically.
- `<out>/build.json`: the build settings (a resumed build must use the same ones); `<out>/coverage.txt`.

Soundfont pieces: `engine.training.performance` performs a chorale voice as MIDI; FluidSynth renders it at 48 kHz (dry:
reverb and chorus off), soxr resamples to the dataset rate, one gain per instrument puts loud notes near -6 dBFS.
Many soundfont samples were recorded with vibrato: a first render measures that wobble (engine.training.analysis.refine_f0)
and the second render cancels it with pitch bend, so a note without performed vibrato is steady. Targets come from
`engine.training.analysis.analyze` at the f0 the MIDI asks for, refined to the audio.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import analysis
from ..dsp import synthesize
from ..expression import extract_controls
from ..model import bridge_legato
from daw_bridge.files import write_atomic, write_json_atomic
from daw_bridge.protocol import check_sample_rate
from ..notes import CONTROL_NAMES, Note, NoteError
from ..params import FRAME_RATE, PARAM_TENSORS, SynthParams, band_hz
from ..runner import RunnerError, RunnerOptions, Task
from .performance import MelodyNote, Performance, chorale_voices, get_instrument, perform, perform_musical

FORMAT, VERSION = "ddsp-dataset", 1
DATASET_HARMONICS = 100  # with the 20 kHz band: every note above 200 Hz is harmonic to the top, 58 Hz to 5.8 kHz
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/MuseScore_General.sf3")
RENDER_RATE = 48000
LOUD_DB = -6.0  # harmonic amplitude of loud notes, dB re a full-scale sine (volume control 0.9)
WOBBLE_LIMIT_SEMITONES = 0.5
ARRAY_KEYS = ("audio", "f0", "amplitude", "harmonics", "noise", "notes", "controls", "loudness_db")


class DatasetError(ValueError):
    """A dataset that cannot be built or read; the message says why in one line."""


# ---------------------------------------------------------------------------------------------------------------
# Reading (for the trainer)

def load_dataset(path: str | Path) -> tuple[dict, dict[str, list[str]]]:
    """-> (meta, {"train": [piece ids], "test": [piece ids]}). Raises DatasetError on an incomplete build."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        hint = " (an incomplete build: run the same build command again to resume)" if (path / "build.json").is_file() else ""
        raise DatasetError(f"{path} is not a dataset: no meta.json{hint}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read {meta_path}: {error}") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise DatasetError(f"{meta_path} is not a {FORMAT} version {VERSION} file")
    return meta, {split: list(ids) for split, ids in meta["splits"].items()}


def load_piece(path: str | Path, piece_id: str) -> dict[str, torch.Tensor]:
    """One piece's arrays as float32 tensors: audio (n,), f0 / amplitude / loudness_db (F,), harmonics (F, 60),
    noise (F, 65), notes (n_notes, 4) [pitch, onset s, offset s, velocity], controls (n_notes, 6)."""
    file = Path(path) / "pieces" / f"{piece_id}.npz"
    try:
        with np.load(file) as data:
            return {key: torch.from_numpy(np.array(data[key], dtype=np.float32)) for key in ARRAY_KEYS}
    except (OSError, KeyError, ValueError) as error:
        raise DatasetError(f"cannot read piece {piece_id!r} of {path}: {error}") from None


def notes_from_array(notes: np.ndarray | torch.Tensor) -> list[Note]:
    """(n, 4) [pitch, onset, offset, velocity] -> engine Notes (ids "0".."n-1")."""
    rows = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    return [Note(pitch=int(round(p)), onset=float(on), offset=float(off), velocity=int(round(v)), id=str(i))
            for i, (p, on, off, v) in enumerate(rows)]


def piece_params(piece: dict, max_hz: float) -> SynthParams:
    """A loaded piece's targets as SynthParams (resynthesise with engine.dsp.synthesize)."""
    return SynthParams(torch.as_tensor(piece["f0"]), torch.as_tensor(piece["amplitude"]),
                       torch.as_tensor(piece["harmonics"]), torch.as_tensor(piece["noise"]), float(max_hz))


# ---------------------------------------------------------------------------------------------------------------
# Targets from audio

def bridged_targets(params: SynthParams, notes: list[Note]) -> SynthParams:
    """Targets with their legato joins bridged (engine.model.bridge_legato, amplitude only): measured at one pitch,
    the harmonic amplitude dips ~26 dB where a note changes pitch against ~9 dB in the audio's loudness (flute), which
    taught networks a release to near silence at every join and inflated the notes' volume_fluctuation."""
    return bridge_legato(params, notes, noise=False)


def fit_frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Cut or extend (repeating the last value) a frame series to n_frames."""
    x = np.asarray(x)
    if x.shape[0] >= n_frames:
        return x[:n_frames]
    return np.concatenate([x, np.repeat(x[-1:], n_frames - x.shape[0], axis=0)])


def note_frames_mask(notes: list[Note], n_frames: int, skip_start: float = 0.0, skip_end: float = 0.0) -> np.ndarray:
    """(F,) bool: frames inside notes, `skip_start` s after each onset to `skip_end` s before each offset."""
    mask = np.zeros(n_frames, dtype=bool)
    for note in notes:
        start = int(math.ceil((note.onset + skip_start) * FRAME_RATE))
        stop = int(math.ceil((note.offset - skip_end) * FRAME_RATE))
        mask[max(start, 0):max(0, min(stop, n_frames))] = True
    return mask


def piece_targets(audio: np.ndarray, prior_f0: np.ndarray, notes: list[Note], sample_rate: int,
                  voiced: np.ndarray | None = None, refine: bool = True,
                  n_harmonics: int = DATASET_HARMONICS) -> tuple[dict[str, np.ndarray], dict]:
    """Audio + assumed f0 + notes -> (the npz arrays, measurements).

    audio: (n,) at sample_rate; prior_f0: (F,) Hz; voiced: (F,) frames whose f0 may be refined (default: all
    but those around note onsets); refine False: prior_f0 is final. Targets cover band_hz(sample_rate) with
    n_harmonics harmonics (the noise carries what lies above the highest harmonic of low notes)."""
    n = audio.shape[0]
    n_frames = analysis.n_frames_for(n, sample_rate)
    prior_f0 = fit_frames(prior_f0, n_frames).astype(np.float64)
    notes_array = np.array([[n_.pitch, n_.onset, n_.offset, n_.velocity] for n_ in notes], dtype=np.float32)
    stored_notes = notes_from_array(notes_array)  # controls from the notes exactly as stored
    if voiced is None:
        voiced = ~analysis.note_change_frames(notes_array[:, 1], n_frames)
    max_hz = band_hz(sample_rate)
    targets = analysis.analyze(audio, prior_f0, sample_rate, refine=refine, voiced=voiced, n_harmonics=n_harmonics,
                               max_hz=max_hz)
    params = SynthParams(*(torch.from_numpy(targets[k]) for k in PARAM_TENSORS), max_hz)
    params = bridged_targets(params, stored_notes)
    targets["amplitude"] = params.amplitude.numpy()
    controls = extract_controls(params, stored_notes).numpy()
    arrays = {
        "audio": audio.astype(np.float32),
        "f0": targets["f0"], "amplitude": targets["amplitude"], "harmonics": targets["harmonics"],
        "noise": targets["noise"], "notes": notes_array, "controls": controls.astype(np.float32),
        "loudness_db": targets["loudness_db"],
    }
    inside = note_frames_mask(stored_notes, n_frames, 0.04, 0.02) & (targets["amplitude"] > 1e-3)
    cents = 1200 * np.log2(targets["f0"][inside] / prior_f0[inside]) if inside.any() else np.zeros(1)
    resynthesis = synthesize(params, sample_rate, n, seed=0).numpy()
    distance = analysis.spectral_distance(audio, resynthesis, sample_rate)
    info = {
        "seconds": round(n / sample_rate, 3),
        "notes": len(notes),
        "f0_vs_assumed_cents": {"median_abs": round(float(np.median(np.abs(cents))), 2),
                                "p95_abs": round(float(np.percentile(np.abs(cents), 95)), 2)},
        "resynthesis_distance": {k: round(v, 4) for k, v in distance.items()},
        "peak_dbfs": round(float(20 * np.log10(max(np.abs(audio).max(), 1e-12))), 2),
    }
    return arrays, info


# ---------------------------------------------------------------------------------------------------------------
# FluidSynth

def find_soundfont(path: str | None = None) -> Path:
    if path:
        if not Path(path).is_file():
            raise DatasetError(f"no such soundfont: {path}")
        return Path(path)
    for candidate in SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise DatasetError("no soundfont found: install the Debian package fluid-soundfont-gm or pass --soundfont")


def fluidsynth_render(midi_path: Path, soundfont: Path, rate: int = RENDER_RATE) -> np.ndarray:
    """Render a MIDI file dry (reverb and chorus off, gain 1) -> mono float64 at `rate`."""
    import soundfile as sf

    if shutil.which("fluidsynth") is None:
        raise DatasetError("fluidsynth not found: install the Debian package fluidsynth (make system-deps)")
    wav = midi_path.with_suffix(".wav")
    command = ["fluidsynth", "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "1.0", "-r", str(rate),
               "-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(midi_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not wav.is_file():
        raise DatasetError(f"fluidsynth failed on {midi_path.name}: {(result.stderr or result.stdout).strip()[:200]}")
    audio, _ = sf.read(str(wav), dtype="float64", always_2d=True)
    wav.unlink()
    return audio.mean(axis=1)


def resample(audio: np.ndarray, from_rate: int, to_rate: int, n_samples: int | None = None) -> np.ndarray:
    """soxr resampling, then cut or zero-pad to n_samples."""
    import soxr

    out = audio if from_rate == to_rate else soxr.resample(audio, from_rate, to_rate, quality="VHQ")
    if n_samples is not None:
        out = np.pad(out, (0, max(0, n_samples - out.shape[0])))[:n_samples]
    return np.asarray(out, dtype=np.float64)


def render_performance(performance: Performance, program: int, soundfont: Path, sample_rate: int, gain: float,
                       workdir: Path, correction: np.ndarray | None = None) -> np.ndarray:
    """A performance -> dry mono audio at sample_rate, round(duration * sample_rate) samples, times gain."""
    midi_path = workdir / "piece.mid"
    performance.write_midi(midi_path, program, bend_correction=correction)
    audio = fluidsynth_render(midi_path, soundfont)
    return resample(audio, RENDER_RATE, sample_rate, int(round(performance.duration * sample_rate))) * gain


def calibrate_gain(program: int, low: int, high: int, soundfont: Path, workdir: Path, sample_rate: int) -> float:
    """Scale that puts loud notes at LOUD_DB: the 75th percentile, over the instrument's range, of the harmonic
    amplitude (engine/params.py units: 1.0 = full-scale sine) of steady notes at full level (velocity, CC7 and
    CC11 at 127, soundfont filter)."""
    import mido

    midi = mido.MidiFile(type=0, ticks_per_beat=1000)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    pitches = list(range(low, high + 1, 3))
    for pitch in pitches:
        track.append(mido.Message("note_on", note=pitch, velocity=127, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=1600))  # 0.8 s on
        track.append(mido.Message("control_change", control=7, value=127, time=400))  # 0.2 s release
    track.append(mido.MetaMessage("end_of_track", time=0))
    path = workdir / "calibrate.mid"
    midi.save(str(path))
    audio = resample(fluidsynth_render(path, soundfont), RENDER_RATE, sample_rate, len(pitches) * sample_rate)
    n_frames = analysis.n_frames_for(audio.shape[0], sample_rate)
    f0 = fit_frames(np.repeat(440.0 * 2.0 ** ((np.array(pitches) - 69.0) / 12.0), FRAME_RATE), n_frames)
    amplitude = analysis.analyze(audio, f0, sample_rate)["amplitude"]
    levels = [np.median(amplitude[i * FRAME_RATE + 50:i * FRAME_RATE + 175]) for i in range(len(pitches))]
    loud = float(np.percentile(levels, 75))
    if loud <= 1e-6:
        raise DatasetError(f"the soundfont {soundfont.name} is silent for GM program {program}")
    return 10 ** (LOUD_DB / 20) / loud


def flatten_wobble(audio: np.ndarray, performance: Performance, prior_f0: np.ndarray, sample_rate: int,
                   voiced: np.ndarray) -> tuple[np.ndarray, float]:
    """The soundfont's own pitch wobble (measured f0 minus asked f0, semitones, inside notes) as a bend correction
    (F,) that cancels it, and its RMS in cents."""
    n_frames = prior_f0.shape[0]
    measured = analysis.refine_f0(audio, prior_f0, sample_rate, voiced=voiced)
    inside = note_frames_mask(performance.notes, n_frames, 0.03, 0.0) & voiced
    wobble = np.where(inside, 12 * np.log2(measured / prior_f0), 0.0)
    wobble = np.clip(wobble, -WOBBLE_LIMIT_SEMITONES, WOBBLE_LIMIT_SEMITONES)
    rms = float(np.sqrt(np.mean(wobble[inside] ** 2)) * 100) if inside.any() else 0.0
    correction = fit_frames(-wobble, performance.bend.shape[0])
    return correction, rms


# ---------------------------------------------------------------------------------------------------------------
# Chorales

def melody_key(notes: list[MelodyNote], length: int = 12) -> tuple[int, ...]:
    """Interval sequence of a melody's first notes: the same tune in another harmonisation or key matches."""
    pitches = [n.pitch for n in notes[:length + 1]]
    return tuple(b - a for a, b in zip(pitches, pitches[1:]))


def select_chorales(n_train: int, n_test: int, seed: int) -> list[tuple[str, str, dict]]:
    """(chorale id, split, voices) for n_test held-out then n_train training chorales, drawn from music21's Bach
    corpus in a seeded order (the same for every instrument); no training chorale shares its soprano tune with a
    held-out one."""
    from music21 import corpus

    paths = sorted((p for p in corpus.getComposer("bach") if str(p).endswith(".mxl")), key=str)
    order = np.random.default_rng(seed).permutation(len(paths))
    chosen, test_keys, n_taken = [], set(), {"train": 0, "test": 0}
    for index in order:
        if n_taken["test"] >= n_test and n_taken["train"] >= n_train:
            break
        path = Path(paths[index])
        try:
            voices = chorale_voices(corpus.parse(str(path)))
        except NoteError:
            continue
        key = melody_key(voices["soprano"])
        if n_taken["test"] < n_test:
            split = "test"
            test_keys.add(key)
        elif key in test_keys:
            continue
        else:
            split = "train"
        chosen.append((path.stem, split, voices))
        n_taken[split] += 1
    if n_taken["test"] < n_test or n_taken["train"] < n_train:
        raise DatasetError(f"music21's corpus has only {len(chosen)} usable chorales; asked for {n_train + n_test}")
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# Building

@dataclass
class Builder:
    """Writes pieces into a dataset folder, resuming a build with the same settings."""
    out: Path
    settings: dict

    def start(self) -> None:
        (self.out / "pieces").mkdir(parents=True, exist_ok=True)
        build = self.out / "build.json"
        if build.is_file():
            try:
                previous = json.loads(build.read_text())
            except ValueError:
                previous = None
            if previous != self.settings:
                raise DatasetError(f"{self.out} holds a build with other settings ({build}): use another --out or "
                                   f"delete that folder")
        else:
            write_json_atomic(build, self.settings)

    def done(self, piece_id: str) -> dict | None:
        info_path = self.out / "pieces" / f"{piece_id}.json"
        if info_path.is_file() and (self.out / "pieces" / f"{piece_id}.npz").is_file():
            return json.loads(info_path.read_text())
        return None

    def write(self, piece_id: str, arrays: dict[str, np.ndarray], info: dict) -> None:
        pieces = self.out / "pieces"

        def save(tmp: str) -> None:
            with open(tmp, "wb") as handle:  # a file object: np.savez would append ".npz" to a name
                np.savez(handle, **arrays)

        write_atomic(pieces / f"{piece_id}.npz", save, suffix=".npz.part")
        write_json_atomic(pieces / f"{piece_id}.json", info)

    def finish(self, meta: dict, infos: dict[str, dict]) -> dict:
        controls = {split: [] for split in ("train", "test")}
        for piece_id, info in infos.items():
            with np.load(self.out / "pieces" / f"{piece_id}.npz") as data:
                controls[info["split"]].append(data["controls"])
        stacked = {s: np.concatenate(c) if c else np.zeros((0, 6), np.float32) for s, c in controls.items()}
        meta["coverage"] = coverage(stacked["train"])
        meta["coverage_test"] = coverage(stacked["test"])
        meta["notes"] = {s: int(c.shape[0]) for s, c in stacked.items()}
        meta["seconds"] = {s: round(sum(i["seconds"] for i in infos.values() if i["split"] == s), 1)
                           for s in ("train", "test")}
        meta["measured"] = summarize(infos)
        meta["pieces"] = infos
        report = coverage_report(meta)
        (self.out / "coverage.txt").write_text(report + "\n")
        write_json_atomic(self.out / "meta.json", meta)
        return meta


def coverage(controls: np.ndarray) -> dict:
    """Per control: min, max, p05, p50, p95 and a 10-bin histogram over [0, 1] (note counts)."""
    out = {}
    for column, name in enumerate(CONTROL_NAMES):
        values = controls[:, column] if controls.shape[0] else np.zeros(1)
        hist, _ = np.histogram(np.clip(values, 0, 1), bins=10, range=(0.0, 1.0))
        out[name] = {"min": round(float(values.min()), 4), "max": round(float(values.max()), 4),
                     "p05": round(float(np.percentile(values, 5)), 4),
                     "p50": round(float(np.percentile(values, 50)), 4),
                     "p95": round(float(np.percentile(values, 95)), 4),
                     "hist": [int(h) for h in hist] if controls.shape[0] else [0] * 10}
    return out


def coverage_verdict(stats: dict) -> str:
    span = stats["p95"] - stats["p05"]
    if stats["p05"] <= 0.1 and stats["p95"] >= 0.9:
        return "covers [0,1]"
    return f"{'most' if span >= 0.6 else 'PARTIAL'}: p05..p95 spans {span:.0%} of [0,1]"


def coverage_report(meta: dict) -> str:
    lines = [f"{meta['instrument']}: {meta['notes']['train']} train notes ({meta['seconds']['train']} s), "
             f"{meta['notes']['test']} held-out notes ({meta['seconds']['test']} s)",
             f"{'control':<22}{'min':>6}{'p05':>6}{'p50':>6}{'p95':>6}{'max':>6}  histogram 0..1 (10 bins)   verdict"]
    bars = " .:-=+*#%@"
    for name in CONTROL_NAMES:
        s = meta["coverage"][name]
        peak = max(max(s["hist"]), 1)
        hist = "".join(bars[min(9, int(math.ceil(9 * h / peak)))] for h in s["hist"])
        lines.append(f"{name:<22}{s['min']:6.2f}{s['p05']:6.2f}{s['p50']:6.2f}{s['p95']:6.2f}{s['max']:6.2f}  "
                     f"[{hist}]                 {coverage_verdict(s)}")
    measured = meta.get("measured", {})
    if measured:
        lines.append(f"resynthesis distance (engine.dsp.synthesize of the targets vs the audio), mean over pieces: "
                     f"spectral convergence {measured['resynthesis_convergence']:.3f}, "
                     f"log-magnitude {measured['resynthesis_log_db']:.2f} dB")
        lines.append(f"f0 vs the assumed pitch inside notes: median |cents| {measured['f0_median_abs_cents']:.1f}, "
                     f"p95 {measured['f0_p95_abs_cents']:.1f}")
    return "\n".join(lines)


def summarize(infos: dict[str, dict]) -> dict:
    values = list(infos.values())
    if not values:
        return {}
    out = {
        "resynthesis_convergence": round(float(np.mean([i["resynthesis_distance"]["convergence"] for i in values])), 4),
        "resynthesis_log_db": round(float(np.mean([i["resynthesis_distance"]["log_db"] for i in values])), 3),
        "f0_median_abs_cents": round(float(np.median([i["f0_vs_assumed_cents"]["median_abs"] for i in values])), 2),
        "f0_p95_abs_cents": round(float(np.median([i["f0_vs_assumed_cents"]["p95_abs"] for i in values])), 2),
    }
    wobble = [i["soundfont_wobble_cents"] for i in values if "soundfont_wobble_cents" in i]
    if wobble:
        out["soundfont_wobble_rms_cents"] = round(float(np.mean(wobble)), 2)
    return out


def build_soundfont_dataset(out: str | Path, instrument: str, pieces: int = 40, held_out: int = 6,
                            sample_rate: int = 48000, soundfont: str | None = None, seed: int = 0,
                            max_seconds: float = 20.0, flatten: bool = True, quiet: bool = False,
                            musical: bool = True, runner: RunnerOptions | None = None) -> dict:
    """Render chorale voices for one GM instrument and analyse them into `out` (see the module docstring): per
    chorale one voice in a coverage performance (every control value, for the synthesis generator) and, with
    `musical`, another voice in a musical performance (what a player would do, for the expression generator).
    One task per piece on `runner` (engine.runner; default: one after another here)."""
    try:
        spec = get_instrument(instrument)
    except ValueError as error:
        raise DatasetError(str(error)) from None
    check_sample_rate(sample_rate)
    if pieces < 1 or held_out < 0:
        raise DatasetError("--pieces must be at least 1 and --held-out at least 0")
    if max_seconds < 2.0:
        raise DatasetError("--max-seconds must be at least 2")
    font = find_soundfont(soundfont)
    out = Path(out)
    settings = {"format": FORMAT, "version": VERSION, "source": "soundfont", "instrument": spec.name,
                "program": spec.program, "soundfont": str(font), "pieces": pieces, "held_out": held_out,
                "sample_rate": sample_rate, "seed": seed, "max_seconds": max_seconds, "flatten_wobble": flatten,
                "musical": musical, "n_harmonics": DATASET_HARMONICS}
    builder = Builder(out, settings)
    builder.start()
    chorales = select_chorales(pieces, held_out, seed)
    planned: list[tuple[str, ChoralePiece]] = []
    for chorale, split, voices in chorales:
        rng = np.random.default_rng([seed, spec.program, zlib.crc32(chorale.encode())])
        voice = str(rng.choice(sorted(voices)))
        other = str(rng.choice([v for v in sorted(voices) if v != voice]))
        planned.append((f"{chorale}-{voice}", ChoralePiece(chorale, split, voice, "coverage", voices[voice], rng)))
        if musical:
            piece_id = f"{chorale}-{other}-musical"
            piece_rng = np.random.default_rng([seed, spec.program, zlib.crc32(piece_id.encode())])
            planned.append((piece_id, ChoralePiece(chorale, split, other, "musical", voices[other], piece_rng)))
    done = {piece_id: builder.done(piece_id) for piece_id, _ in planned}
    todo = [(piece_id, piece) for piece_id, piece in planned if done[piece_id] is None]
    tasks = []
    if todo:
        with tempfile.TemporaryDirectory(prefix="ddsp-dataset-") as tmp:
            gain = calibrate_gain(spec.program, spec.low, spec.high, font, Path(tmp), sample_rate)
        tasks = [Task(piece_id, build_chorale_piece, (builder, piece_id, piece, spec, font, sample_rate, gain,
                                                      max_seconds, flatten)) for piece_id, piece in todo]
    infos = build_pieces(done, tasks, f"dataset {spec.name}", quiet, runner)
    splits = {s: [p for p, i in infos.items() if i["split"] == s] for s in ("train", "test")}
    gains = {i["gain"] for i in infos.values()}
    meta = {"format": FORMAT, "version": VERSION, "instrument": spec.name, "program": spec.program,
            "source": "soundfont", "soundfont": str(font), "sample_rate": sample_rate, "max_hz": band_hz(sample_rate),
            "n_harmonics": DATASET_HARMONICS,
            "frame_rate": FRAME_RATE, "pitch_range": [spec.low, spec.high], "splits": splits, "seed": seed,
            "render": {"engine": "fluidsynth", "rate": RENDER_RATE, "reverb": False, "chorus": False,
                       "gain": sorted(gains)[0] if len(gains) == 1 else sorted(gains),
                       "loud_amplitude_db": LOUD_DB, "flatten_wobble": flatten},
            "max_seconds": max_seconds}
    return builder.finish(meta, infos)


@dataclass
class ChoralePiece:
    """One piece to build: a chorale voice, how to play it and the random generator its player draws from."""
    chorale: str
    split: str
    voice: str
    style: str  # "coverage" (perform) or "musical" (perform_musical)
    melody: list[MelodyNote]
    rng: np.random.Generator


def build_chorale_piece(builder: Builder, piece_id: str, piece: ChoralePiece, spec, font: Path, sample_rate: int,
                        gain: float, max_seconds: float, flatten: bool) -> dict:
    """Perform, render and analyse one piece and write it into the dataset (a runner task); -> its info."""
    player = perform_musical if piece.style == "musical" else perform
    performance = player(piece.melody, spec, piece.rng, max_seconds)
    with tempfile.TemporaryDirectory(prefix="ddsp-dataset-") as tmp:
        arrays, info = render_piece(performance, spec.program, font, sample_rate, gain, Path(tmp), flatten)
    info.update({"split": piece.split, "chorale": piece.chorale, "voice": piece.voice, "style": piece.style,
                 "transpose": performance.transpose, "gain": gain})
    builder.write(piece_id, arrays, info)
    return info


def build_pieces(done: dict[str, dict | None], tasks: list[Task], desc: str, quiet: bool,
                 runner: RunnerOptions | None) -> dict[str, dict]:
    """Run the tasks of the pieces not yet built (`done`: every piece's info from an earlier build, or None, in
    the order meta.json lists them); -> every piece's info in that order. A failed piece is named in one line and
    the others are kept; then DatasetError (run again to resume)."""
    try:
        outcomes = (runner or RunnerOptions()).run(tasks, desc=desc, unit="piece", quiet=quiet)
    except RunnerError as error:
        raise DatasetError(str(error)) from None
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise DatasetError(f"{len(failed)} of {len(done)} pieces failed ({failed[0].label}: {failed[0].error}"
                           f"{'; the others above' if len(failed) > 1 else ''}); the rest are kept: run the same "
                           f"command again to retry")
    built = {o.label: o.value for o in outcomes}
    return {piece_id: built[piece_id] if piece_id in built else info for piece_id, info in done.items()}


def render_piece(performance: Performance, program: int, font: Path, sample_rate: int, gain: float,
                 workdir: Path, flatten: bool) -> tuple[dict, dict]:
    """Render (twice when flattening the soundfont's own wobble) and analyse one performance."""
    audio = render_performance(performance, program, font, sample_rate, gain, workdir)
    n_frames = analysis.n_frames_for(audio.shape[0], sample_rate)
    prior = fit_frames(performance.f0, n_frames).astype(np.float64)
    onsets = np.array([n.onset for n in performance.notes])
    voiced = ~analysis.note_change_frames(onsets, n_frames)
    wobble_rms = None
    if flatten:
        correction, wobble_rms = flatten_wobble(audio, performance, prior, sample_rate, voiced)
        audio = render_performance(performance, program, font, sample_rate, gain, workdir, correction)
    arrays, info = piece_targets(audio, prior, performance.notes, sample_rate, voiced)
    if wobble_rms is not None:
        info["soundfont_wobble_cents"] = round(wobble_rms, 2)
    return arrays, info

