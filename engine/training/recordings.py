"""Datasets from the user's own monophonic recordings (`python -m engine dataset --recordings DIR ...`).

Each WAV/FLAC file is one piece. f0: PESTO (engine.training.analysis.track_pitch), median-filtered, then refined by
engine.training.analysis. Voicing: a frame is voiced when most of its energy is harmonic at that f0 (PESTO's own confidence
proved unreliable on instrument audio). Notes: from a same-named MIDI file when there is one, else segmented from the
pitch track and the harmonic amplitude. Targets and controls as for soundfont pieces (engine.training.dataset.piece_targets).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import analysis
from .dataset import (DATASET_HARMONICS, FORMAT, LOUD_DB, VERSION, Builder, DatasetError, build_pieces,
                      note_frames_mask, piece_targets, resample)
from ..batch import MIDI_SUFFIXES
from daw_bridge.protocol import check_sample_rate
from ..notes import Note, NoteError
from ..params import FRAME_RATE, band_hz
from ..runner import RunnerOptions, Task

AUDIO_SUFFIXES = (".wav", ".flac")

MIN_NOTE_FRAMES = 15  # 60 ms
HARMONIC_SHARE = 0.6
VOICED_BELOW_PEAK_DB = 45.0
SPLIT_SEMITONES = 0.6  # a pitch excursion this far from the note for SPLIT_FRAMES starts a new note
SPLIT_FRAMES = 10
REARTICULATION_DB = 9.0  # a rise this large within 40 ms after a dip starts a new note on the same pitch


def recording_files(folder: Path) -> list[Path]:
    """The WAV/FLAC files of a folder (or the one file given), sorted; raises DatasetError if there are none."""
    if folder.is_file():
        files = [folder]
    elif folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        others = sorted(p.name for p in folder.iterdir()
                        if p.is_file() and p.suffix.lower() not in AUDIO_SUFFIXES + MIDI_SUFFIXES)
        if others:
            print(f"note: ignoring {len(others)} file(s) that are not .wav/.flac/.mid: {', '.join(others[:5])}",
                  file=sys.stderr)
    else:
        raise DatasetError(f"no such folder: {folder}")
    if not files:
        raise DatasetError(f"no .wav or .flac recordings in {folder}")
    bad = [p.name for p in files if p.suffix.lower() not in AUDIO_SUFFIXES]
    if bad:
        raise DatasetError(f"{bad[0]} is not a .wav or .flac file")
    return files


def read_recording(path: Path, sample_rate: int) -> np.ndarray:
    """A recording as mono float64 at sample_rate; raises DatasetError if it is not readable audio or is silent."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, ValueError, TypeError) as error:  # soundfile's LibsndfileError is a RuntimeError
        raise DatasetError(f"cannot read {path.name} as audio: {str(error).splitlines()[0]}") from None
    audio = resample(audio.mean(axis=1), rate, sample_rate)
    if audio.shape[0] < sample_rate // 4:
        raise DatasetError(f"{path.name} is shorter than 0.25 s")
    if not np.isfinite(audio).all() or np.abs(audio).max() < 1e-5:
        raise DatasetError(f"{path.name} is silent (or holds NaN/inf samples)")
    return audio


def midi_notes(path: Path, n_seconds: float) -> list[Note]:
    """Notes of a MIDI file (all pitched tracks together) as one monophonic line inside [0, n_seconds): an
    overlapping note is cut at the next onset."""
    from ..notes import clips_from_midi

    notes = sorted((n for clip in clips_from_midi(path) for n in clip.notes), key=lambda n: (n.onset, -n.pitch))
    line: list[Note] = []
    for note in notes:
        if note.onset >= n_seconds - 0.01:
            continue
        if line and line[-1].offset > note.onset:
            previous = line[-1]
            if note.onset - previous.onset < 1.0 / FRAME_RATE:  # a chord: keep its top note
                continue
            line[-1] = Note(previous.pitch, previous.onset, note.onset, previous.velocity, previous.id)
        line.append(Note(note.pitch, note.onset, min(note.offset, n_seconds), note.velocity, str(len(line))))
    if not line:
        raise DatasetError(f"{path.name} has no notes inside its recording")
    return [Note(n.pitch, n.onset, n.offset, n.velocity, str(i)) for i, n in enumerate(line)]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def voiced_frames(audio: np.ndarray, harmonic_audio: np.ndarray, amplitude: np.ndarray,
                  sample_rate: int) -> np.ndarray:
    """(F,) bool: frames whose sound is mostly harmonic at the tracked f0 (harmonic part >= HARMONIC_SHARE of the
    frame's energy) and within VOICED_BELOW_PEAK_DB of the loudest frame (and above -70 dB)."""
    n_frames = amplitude.shape[0]
    total = analysis.smooth_frames(_frame_energy(audio, sample_rate, n_frames), 5)
    harmonic = analysis.smooth_frames(_frame_energy(harmonic_audio, sample_rate, n_frames), 5)
    amp_db = 20 * np.log10(np.maximum(amplitude, 1e-5))
    return (harmonic >= HARMONIC_SHARE * total) & (amp_db > max(amp_db.max() - VOICED_BELOW_PEAK_DB, -70.0))


def _frame_energy(audio: np.ndarray, sample_rate: int, n_frames: int) -> np.ndarray:
    hop = sample_rate / FRAME_RATE
    width = int(round(4 * hop))
    padded = np.pad(np.asarray(audio, dtype=np.float64), (width // 2, width))
    starts = np.round(np.arange(n_frames) * hop).astype(np.int64)
    return (padded[starts[:, None] + np.arange(width)] ** 2).mean(1)


def segment_notes(f0: np.ndarray, voiced: np.ndarray, amplitude: np.ndarray) -> list[Note]:
    """Notes from a pitch track: voiced runs, split where the pitch leaves the note by SPLIT_SEMITONES for
    SPLIT_FRAMES frames, or at a dip followed by a sharp rise (a re-articulation). f0, voiced, amplitude: (F,)
    -> notes (velocity from the note's peak level, by the soundfont law 40 log10(v / 127) dB re LOUD_DB)."""
    from scipy.ndimage import median_filter

    voiced = voiced.copy()
    amp_db = 20 * np.log10(np.maximum(amplitude, 1e-5))
    for start, stop in _runs(~voiced):  # close short gaps
        if 0 < start and stop < voiced.shape[0] and stop - start <= 3:
            voiced[start:stop] = True
    semitones = median_filter(12 * np.log2(np.maximum(f0, 1.0) / 440.0) + 69, size=9, mode="nearest")
    rise = np.full(amp_db.shape[0], -np.inf)
    rise[:-10] = amp_db[10:] - amp_db[:-10]
    local_min = amp_db <= median_filter(amp_db, size=21, mode="nearest")
    segments = []
    for start, stop in _runs(voiced):
        if stop - start < MIN_NOTE_FRAMES:
            continue
        cuts = [start]
        pitch = np.round(np.median(semitones[start:start + SPLIT_FRAMES]))
        away = 0
        for k in range(start, stop):
            away = away + 1 if abs(semitones[k] - pitch) > SPLIT_SEMITONES else 0
            if away >= SPLIT_FRAMES and k - SPLIT_FRAMES + 1 - cuts[-1] >= MIN_NOTE_FRAMES:
                cuts.append(k - SPLIT_FRAMES + 1)
                pitch = np.round(np.median(semitones[cuts[-1]:cuts[-1] + SPLIT_FRAMES]))
                away = 0
            elif (rise[k] > REARTICULATION_DB and local_min[k] and k - cuts[-1] >= MIN_NOTE_FRAMES
                  and stop - k >= MIN_NOTE_FRAMES):
                cuts.append(k)
        cuts.append(stop)
        segments += [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b - a >= MIN_NOTE_FRAMES // 2]
    notes = []
    for a, b in segments:
        pitch = int(np.clip(np.round(np.median(semitones[a:b])), 0, 127))
        velocity = int(np.clip(np.round(127 * 10 ** ((amp_db[a:b].max() - LOUD_DB) / 40)), 1, 127))
        notes.append(Note(pitch, a / FRAME_RATE, b / FRAME_RATE, velocity, str(len(notes))))
    return notes


def recording_piece(audio: np.ndarray, sample_rate: int, midi: Path | None) -> tuple[dict, dict]:
    """One recording -> (npz arrays, measurements): f0 by PESTO, refined by analysis; voicing from how much of
    the sound is harmonic at that f0; notes from the MIDI file or segmented from the pitch track."""
    from scipy.ndimage import median_filter

    n = audio.shape[0]
    n_frames = analysis.n_frames_for(n, sample_rate)
    tracked, _ = analysis.track_pitch(audio, sample_rate)
    tracked = 440.0 * 2.0 ** (median_filter(12 * np.log2(np.maximum(tracked, 20.0) / 440.0), size=5,
                                            mode="nearest") / 12.0)
    notes = midi_notes(midi, n / sample_rate) if midi is not None else None
    prior = tracked.copy()
    if notes is not None:  # the score's pitch where the tracker is an octave (or more than a semitone) away
        for note in notes:
            a, b = int(round(note.onset * FRAME_RATE)), min(int(round(note.offset * FRAME_RATE)), n_frames)
            hz = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
            prior[a:b] = np.where(np.abs(12 * np.log2(tracked[a:b] / hz)) > 1.0, hz, tracked[a:b])
    jumps = np.abs(np.diff(12 * np.log2(prior), prepend=np.log2(prior[0]) * 12)) > 0.5
    steady = ~analysis.note_change_frames(np.flatnonzero(jumps) / FRAME_RATE, n_frames)
    first = analysis.analyze(audio, prior, sample_rate, voiced=steady)
    voiced = voiced_frames(audio, first["harmonic_audio"], first["amplitude"], sample_rate)
    if notes is None:
        if not voiced.any():
            raise DatasetError("no pitched sound found (nothing is mostly harmonic at the tracked pitch)")
        notes = segment_notes(first["f0"].astype(np.float64), voiced, first["amplitude"])
        if not notes:
            raise DatasetError("no notes found (too quiet, too short, or not monophonic pitched sound)")
    outside = ~note_frames_mask(notes, n_frames)
    held = analysis.hold_frames(first["f0"].astype(np.float64), outside)
    arrays, info = piece_targets(audio, held, notes, sample_rate, refine=False)
    info["f0_vs_assumed_cents"] = _cents_summary(held, tracked, notes, voiced)  # the tracker's f0 here
    info["notes_from"] = "midi" if midi is not None else "segmentation"
    return arrays, info


def _cents_summary(f0: np.ndarray, reference: np.ndarray, notes: list[Note], valid: np.ndarray) -> dict:
    inside = note_frames_mask(notes, f0.shape[0], 0.04, 0.02) & valid
    cents = 1200 * np.log2(np.maximum(f0[inside], 1.0) / np.maximum(reference[inside], 1.0)) if inside.any() else np.zeros(1)
    return {"median_abs": round(float(np.median(np.abs(cents))), 2),
            "p95_abs": round(float(np.percentile(np.abs(cents), 95)), 2)}


def build_recordings_dataset(recordings: str | Path, out: str | Path, instrument_name: str,
                             program: int | None = None, held_out: int | None = None, sample_rate: int = 48000,
                             seed: int = 0, quiet: bool = False, runner: RunnerOptions | None = None) -> dict:
    """Analyse a folder of monophonic recordings (WAV/FLAC, optional same-named .mid) into a dataset at `out`.
    Held-out pieces are whole recordings (about 15 %, at least one when there are two or more). One task per
    recording on `runner` (engine.runner; default: one after another here)."""
    check_sample_rate(sample_rate)
    if not instrument_name or not instrument_name.replace("_", "").replace("-", "").isalnum():
        raise DatasetError(f"--instrument-name must be letters, digits, - or _, got {instrument_name!r}")
    if program is not None and not 0 <= program <= 127:
        raise DatasetError(f"--program must be a GM program 0..127, got {program}")
    folder = Path(recordings)
    files = recording_files(folder)
    ids = _piece_ids(files)
    n_test = held_out if held_out is not None else (max(1, round(0.15 * len(files))) if len(files) >= 2 else 0)
    if not 0 <= n_test < len(files):
        raise DatasetError(f"--held-out {n_test} leaves no recording to train on ({len(files)} found)")
    if n_test == 0:
        print("note: one recording: no held-out split (add recordings to evaluate on unseen audio)", file=sys.stderr)
    order = np.random.default_rng(seed).permutation(len(files))
    test = {ids[i] for i in order[:n_test]}
    out = Path(out)
    settings = {"format": FORMAT, "version": VERSION, "source": "recordings", "instrument": instrument_name,
                "program": program, "recordings": str(folder.resolve()), "held_out": n_test,
                "sample_rate": sample_rate, "seed": seed,
                "files": {p.name: p.stat().st_size for p in files}}
    builder = Builder(out, settings)
    builder.start()
    done = {piece_id: builder.done(piece_id) for piece_id in ids}
    tasks = [Task(piece_id, build_recording_piece, (builder, piece_id, path, sample_rate,
                                                     "test" if piece_id in test else "train"))
             for path, piece_id in zip(files, ids) if done[piece_id] is None]
    infos = build_pieces(done, tasks, f"dataset {instrument_name}", quiet, runner)
    pitches = [int(p) for i in infos for p in np.load(out / "pieces" / f"{i}.npz")["notes"][:, 0]]
    splits = {s: [p for p, i in infos.items() if i["split"] == s] for s in ("train", "test")}
    meta = {"format": FORMAT, "version": VERSION, "instrument": instrument_name, "program": program,
            "source": "recordings", "soundfont": None, "sample_rate": sample_rate, "max_hz": band_hz(sample_rate), "n_harmonics": DATASET_HARMONICS,
            "frame_rate": FRAME_RATE, "pitch_range": [min(pitches), max(pitches)], "splits": splits, "seed": seed,
            "recordings": str(folder.resolve()), "pitch_tracker": f"pesto-pitch {analysis.PESTO_MODEL}"}
    return builder.finish(meta, infos)


def build_recording_piece(builder: Builder, piece_id: str, path: Path, sample_rate: int, split: str) -> dict:
    """Analyse one recording (with its same-named MIDI file, when there is one) into the dataset (a runner task)."""
    midi = next((m for m in (path.with_suffix(s) for s in MIDI_SUFFIXES) if m.is_file()), None)
    audio = read_recording(path, sample_rate)
    try:
        arrays, info = recording_piece(audio, sample_rate, midi)
    except (DatasetError, NoteError) as error:
        raise DatasetError(f"{path.name}: {error}") from None
    info.update({"split": split, "file": path.name})
    builder.write(piece_id, arrays, info)
    return info


def _piece_ids(files: list[Path]) -> list[str]:
    ids, seen = [], set()
    for path in files:
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem) or "recording"
        piece_id, k = base, 1
        while piece_id in seen:
            k += 1
            piece_id = f"{base}-{k}"
        seen.add(piece_id)
        ids.append(piece_id)
    return ids
