"""Held-out melodies (folk songs, not Bach chorales) and the four renders the sound benchmarks compare.

Shared by `bench/realism.py` and `bench/playing.py`. The melodies are a fixed list of monophonic tunes from music21's
bundled corpus (Essen folk song collection and Aird's Airs), the first `--melodies N` of `MELODIES`; each is played at
96 quarter notes a minute, velocity 80 (mezzo-forte), legato as written (a note lasts until the next onset unless the
score has a rest), after a 0.5 s lead-in, and moved by whole octaves into the instrument's range
(`engine/training/performance.py` INSTRUMENTS; the octave that puts the mean pitch nearest the range centre).

For a preset and a melody, at 48 kHz, trimmed or padded to the melody's last offset + 1 s:
  a: the preset with its own expression generator (engine.render.render_clips: what `python -m engine render
     song.mid --preset NAME --sample-rate 48000` does, seed 0);
  b: the `parametric` baseline the same way;
  c: FluidSynth with the preset's training soundfont (FluidR3_GM.sf2), dry: fluidsynth -n -i -q -R 0 -C 0 -g 1.0
     -r 48000 -O float -T wav -F out.wav SF2 song.mid, channels averaged to mono;
  d: FluidSynth the same way with MuseScore_General.sf3 (Debian musescore-general-soundfont).
FluidSynth renders all melodies of a preset in one run (one "suite" MIDI file, melodies 3+ s apart, cut back into
melodies at their known start times; a .sf3 takes ~7 s to decode at every start) and caches the result under
`out/bench-cache/` keyed by the suite MIDI bytes, the soundfont file, the command and FluidSynth's version.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (corpus path, tune number in that ABC file); fixed, in this order: `--melodies N` takes the first N
MELODIES = (
    ("essenFolksong/altdeu10", 6),
    ("essenFolksong/ballad10", 12),
    ("essenFolksong/han1", 1),
    ("essenFolksong/irl", 13),
    ("essenFolksong/erk5", 2),
    ("airdsAirs/book1", 6),
)
NEURAL_PRESETS = ("violin", "cello", "flute", "oboe", "clarinet", "bassoon")
BASELINE = "parametric"
TEMPO_QPM = 96.0
VELOCITY = 80
LEAD_IN = 0.5
TAIL = 1.0
SUITE_GAP = 3.0
SAMPLE_RATE = 48000
TICKS_PER_QUARTER = 960
FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
MUSESCORE = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
CACHE = ROOT / "out" / "bench-cache"  # FluidSynth renders, 24-bit FLAC, ~10 MB a preset and library
LABELS = {"a": "preset", "b": "parametric", "c": "FluidR3 (training)", "d": "MuseScore General"}


@dataclass
class Melody:
    key: str  # "essenFolksong/han1#1"
    title: str
    pitches: list[int]
    starts: list[float]  # quarter notes
    lengths: list[float]  # quarter notes

    @property
    def quarters(self) -> float:
        return max(s + l for s, l in zip(self.starts, self.lengths))


@dataclass
class Take:
    """A melody placed in an instrument's range, in seconds."""
    melody: Melody
    transpose: int
    pitches: list[int]
    onsets: np.ndarray
    offsets: np.ndarray

    @property
    def seconds(self) -> float:  # length of every render of it
        return float(self.offsets.max()) + TAIL


@dataclass
class Renders:
    take: Take
    sample_rate: int
    audio: dict[str, np.ndarray] = field(default_factory=dict)  # "a".."d" -> (n,) float64, same length


def load_melodies(n: int | None = None, tunes: tuple[tuple[str, int], ...] = MELODIES) -> list[Melody]:
    """The first n of `tunes` (all by default), parsed from music21's corpus; raises if one is not monophonic."""
    from music21 import corpus

    out = []
    for path, number in tunes[:n]:
        score = corpus.parse(path, number=number)
        pitches, starts, lengths = [], [], []
        for element in score.stripTies().flatten().notes:
            if float(element.quarterLength) <= 0:  # grace notes
                continue
            if len(element.pitches) != 1:
                raise ValueError(f"{path}#{number} is not monophonic")
            pitches.append(element.pitches[0].midi)
            starts.append(float(element.offset))
            lengths.append(float(element.quarterLength))
        first = min(starts)
        title = (score.metadata.title if score.metadata else "") or ""
        out.append(Melody(f"{path}#{number}", title.strip(), pitches, [s - first for s in starts], lengths))
    return out


def octave_shift(pitches: list[int], low: int, high: int) -> int:
    """Whole-octave transposition putting every pitch in [low, high], the mean pitch nearest the range centre."""
    fits = [12 * k for k in range(-8, 9) if low <= min(pitches) + 12 * k and max(pitches) + 12 * k <= high]
    if not fits:
        raise ValueError(f"pitches {min(pitches)}..{max(pitches)} fit no octave of {low}..{high}")
    centre = (low + high) / 2
    return min(fits, key=lambda s: (abs(np.mean(pitches) + s - centre), s))


def place(melody: Melody, instrument: str) -> Take:
    from engine.training.performance import get_instrument

    inst = get_instrument(instrument)
    shift = octave_shift(melody.pitches, inst.low, inst.high)
    beat = 60.0 / TEMPO_QPM
    onsets = LEAD_IN + np.asarray(melody.starts) * beat
    offsets = onsets + np.asarray(melody.lengths) * beat
    return Take(melody, shift, [p + shift for p in melody.pitches], onsets, offsets)


def write_midi(path: Path, takes: list[tuple[Take, float]], program: int, end: float | None = None) -> Path:
    """One track, GM `program`, every take's notes shifted by its start (seconds), velocity VELOCITY; `end`: a
    harmless controller (CC 20) there so players keep rendering release tails until then."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=TICKS_PER_QUARTER, initial_tempo=TEMPO_QPM)
    track = pretty_midi.Instrument(program=program, name=f"program {program}")
    for take, start in takes:
        for pitch, onset, offset in zip(take.pitches, take.onsets, take.offsets):
            track.notes.append(pretty_midi.Note(VELOCITY, int(pitch), start + float(onset), start + float(offset)))
    if end is not None:
        track.control_changes.append(pretty_midi.ControlChange(20, 0, end))
    midi.instruments.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


def fit(audio: np.ndarray, n: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    return np.pad(audio, (0, max(0, n - audio.shape[0])))[:n]


def render_engine(midi_path: Path, preset_name: str, sample_rate: int, n_samples: int) -> np.ndarray:
    """The render `python -m engine render MIDI --preset NAME --sample-rate RATE` makes (seed 0), mono, fitted."""
    from engine.notes import clips_from_midi
    from engine.presets import load_preset
    from engine.render import render_clips

    preset = load_preset(preset_name)
    clips = clips_from_midi(midi_path)
    return fit(render_clips([(clip, preset) for clip in clips], sample_rate, seed=0).audio, n_samples)


def fluidsynth_version() -> str:
    out = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True)
    return (out.stdout.splitlines() or [""])[0].strip()


def fluidsynth_command(soundfont: Path, midi: Path, wav: Path, sample_rate: int) -> list[str]:
    return ["fluidsynth", "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "1.0", "-r", str(sample_rate),
            "-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(midi)]


def check_soundfonts() -> None:
    if shutil.which("fluidsynth") is None:
        raise SystemExit("error: fluidsynth not found (make system-deps)")
    for font, package in ((FLUIDR3, "fluid-soundfont-gm"), (MUSESCORE, "musescore-general-soundfont")):
        if not font.is_file():
            raise SystemExit(f"error: {font} missing: apt-get install -y --no-install-recommends {package} "
                             "(make bench-sound does it)")


def fluidsynth_suite(takes: list[Take], program: int, soundfont: Path, sample_rate: int,
                     cache: Path = CACHE) -> list[np.ndarray]:
    """FluidSynth renders of the takes (mono float64, each fitted to take.seconds), from one cached suite render."""
    import soundfile as sf

    starts, t = [], 0.0
    quarter = 60.0 / TEMPO_QPM
    for take in takes:
        starts.append(t)
        t = float(np.ceil((t + take.seconds + SUITE_GAP) / quarter) * quarter)
    with tempfile.TemporaryDirectory() as tmp:
        midi = write_midi(Path(tmp) / "suite.mid", list(zip(takes, starts)), program, end=t)
        font = soundfont.resolve()
        stat = font.stat()
        key = hashlib.sha256(b"\0".join([
            midi.read_bytes(), str(font).encode(), f"{stat.st_size}:{stat.st_mtime_ns}".encode(),
            " ".join(fluidsynth_command(Path("SF"), Path("MID"), Path("WAV"), sample_rate)).encode(),
            fluidsynth_version().encode()])).hexdigest()[:24]
        cached = cache / f"fluidsynth-{font.stem}-p{program}-{key}.flac"
        if cached.is_file():
            audio, _ = sf.read(str(cached), dtype="float64")
        else:
            wav = Path(tmp) / "suite.wav"
            result = subprocess.run(fluidsynth_command(font, midi, wav, sample_rate), capture_output=True, text=True)
            if result.returncode != 0 or not wav.is_file():
                raise RuntimeError(f"fluidsynth failed: {(result.stderr or result.stdout).strip()[:300]}")
            audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
            assert rate == sample_rate, rate
            audio = audio.mean(axis=1).astype(np.float64)
            if np.abs(audio).max() >= 1.0:
                raise RuntimeError(f"fluidsynth clipped ({np.abs(audio).max():.2f}) on {font.name}")
            cache.mkdir(parents=True, exist_ok=True)
            part = cached.with_name(cached.stem + ".part.flac")
            sf.write(str(part), audio, sample_rate, subtype="PCM_24")  # 24 bits: far below anything measured
            os.replace(part, cached)
    return [fit(audio[int(round(s * sample_rate)):], int(round(take.seconds * sample_rate)))
            for take, s in zip(takes, starts)]


def render_all(preset_name: str, melodies: list[Melody], sample_rate: int = SAMPLE_RATE,
               which: str = "abcd", cache: Path = CACHE, midi_dir: Path | None = None) -> list[Renders]:
    """The renders `which` (subset of "abcd") of every melody for a neural preset."""
    meta = json.loads((ROOT / "presets" / preset_name / "preset.json").read_text())
    program, instrument = int(meta["program"]), meta.get("instrument", preset_name)
    training_font = Path(meta.get("training", {}).get("soundfont") or FLUIDR3)
    takes = [place(m, instrument) for m in melodies]
    out = [Renders(take, sample_rate) for take in takes]
    with tempfile.TemporaryDirectory() as tmp:
        folder = midi_dir or Path(tmp)
        for i, r in enumerate(out):
            n = int(round(r.take.seconds * sample_rate))
            path = write_midi(folder / f"{preset_name}-{i}.mid", [(r.take, 0.0)], program)
            if "a" in which:
                r.audio["a"] = render_engine(path, preset_name, sample_rate, n)
            if "b" in which:
                r.audio["b"] = render_engine(path, BASELINE, sample_rate, n)
    for letter, font in (("c", training_font), ("d", MUSESCORE)):
        if letter in which:
            for r, audio in zip(out, fluidsynth_suite(takes, program, font, sample_rate, cache)):
                r.audio[letter] = audio
    return out


def melody_table(melodies: list[Melody]) -> list[dict]:
    beat = 60.0 / TEMPO_QPM
    return [{"melody": m.key, "title": m.title, "notes": len(m.pitches),
             "seconds": round(m.quarters * beat, 2), "pitch_range": [min(m.pitches), max(m.pitches)]}
            for m in melodies]


def common_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--presets", default=",".join(NEURAL_PRESETS), help="comma-separated neural presets")
    parser.add_argument("--melodies", type=int, default=len(MELODIES), help=f"the first N of {len(MELODIES)}")
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--plot", help="write per-preset PNGs into this folder")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    parser.add_argument("--cache", default=str(CACHE), help="FluidSynth render cache")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    return parser


def parse_presets(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if not (ROOT / "presets" / name / "preset.json").is_file():
            raise SystemExit(f"error: no preset {name!r} in presets/")
    return names


def _clean(x):
    """NaN / inf -> None, numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def write_json(path: str, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".part")
    tmp.write_text(json.dumps(_clean(data), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


def plot_comparison(path: Path, title: str, renders: Renders, seconds: float = 10.0,
                    marks: dict[str, np.ndarray] | None = None) -> Path:
    """PNG: level curves of (a) and (c) over the first `seconds` of the melody (note onsets dotted, `marks`: per
    letter, times to mark on its curve, e.g. where attacks end), then the log-mel spectrograms of (a) and (c)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.training import measures

    sr, take = renders.sample_rate, renders.take
    hop = measures.HOP_SECONDS
    fig, axes = plt.subplots(3, 1, figsize=(13, 10), gridspec_kw={"height_ratios": [1.3, 1, 1]})
    ax = axes[0]
    for letter, colour in (("c", "tab:blue"), ("a", "tab:red")):
        levels = measures.level_curve(renders.audio[letter], sr)
        t = np.arange(levels.shape[0]) * hop
        keep = t <= seconds
        ax.plot(t[keep], levels[keep], color=colour, lw=1.0, label=f"({letter}) {LABELS[letter]}")
        if marks and letter in marks:
            times = marks[letter][marks[letter] <= seconds]
            ax.plot(times, np.interp(times, t, levels), "v", color=colour, ms=4)
    for onset in take.onsets[take.onsets <= seconds]:
        ax.axvline(onset, color="0.6", lw=0.6, ls=":")
    ax.set_ylim(-75, 0)
    ax.set_xlim(0, seconds)
    ax.set_ylabel("level, dB (20 ms RMS)")
    ax.set_title(f"{title}: {take.melody.key} ({take.melody.title}), transposed {take.transpose:+d}")
    ax.legend(loc="lower right", fontsize=8)
    n_fft = measures._fft_size(sr)
    fmax = measures.MEL_FMAX_RATIO * sr / 2
    edges = 700.0 * (10 ** (np.linspace(2595 * np.log10(1 + 40 / 700), 2595 * np.log10(1 + fmax / 700), 66)
                            / 2595) - 1)
    for ax, letter in zip(axes[1:], ("a", "c")):
        mel = measures.log_mel(renders.audio[letter][:int((seconds + 0.5) * sr)], sr, n_fft=n_fft)
        mel = mel[:int(seconds / hop)] - mel.max()
        image = ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                          extent=(0, mel.shape[0] * hop, 0, mel.shape[1]))
        ticks = [k for k in range(0, 64, 8)] + [63]
        ax.set_yticks([k + 0.5 for k in ticks])
        ax.set_yticklabels([f"{edges[k + 1]:.0f}" for k in ticks])
        ax.set_ylabel("mel band centre, Hz")
        ax.set_title(f"log-mel ({letter}) {LABELS[letter]}, dB re its max", fontsize=9)
        fig.colorbar(image, ax=ax, pad=0.01)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
