"""Dataset builder: analysis on exactly known signals, a tiny soundfont dataset rendered by real FluidSynth, the
recordings mode on WAVs rendered here (with and without a MIDI file), and bad input."""
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.training import analysis
from engine.training.dataset import (DatasetError, build_soundfont_dataset, find_soundfont, load_dataset, load_piece,
                            melody_key, notes_from_array, piece_params, render_performance, select_chorales)
from engine.dsp import FilteredNoise, synthesize
from engine.expression import extract_controls
from engine.params import FRAME_RATE, SynthParams, normalize_harmonics
from engine.training.performance import get_instrument, perform
from engine.training.recordings import build_recordings_dataset

SR = 16000
# engine.dsp.synthesize of the targets vs the real audio (spectral convergence, 4 FFT sizes). Measured on the
# default datasets: flute 0.05 on average, 0.12 at most over its 46 pieces (0.03 and 0.12 on the two test pieces).
MAX_RESYNTHESIS_CONVERGENCE = 0.25
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")


def synthetic(seconds=3.0, cents_offset=0.0):
    """A known voice made by engine.dsp: 220 Hz with 0.3-semitone vibrato, a swell, 1/k^1.5 harmonics."""
    n = int(seconds * SR)
    n_frames = analysis.n_frames_for(n, SR)
    t = np.arange(n_frames) / FRAME_RATE
    f0 = 220.0 * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t) / 12)
    amplitude = 0.3 * np.clip(t * 5, 0, 1) * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))
    harmonics = np.zeros((n_frames, 60))
    harmonics[:, :30] = 1.0 / np.arange(1, 31) ** 1.5
    harmonics = normalize_harmonics(torch.tensor(harmonics, dtype=torch.float32),
                                    torch.tensor(f0, dtype=torch.float32), SR / 2).numpy()
    params = SynthParams(torch.tensor(f0, dtype=torch.float32), torch.tensor(amplitude, dtype=torch.float32),
                         torch.tensor(harmonics), torch.zeros(n_frames, 65), SR / 2)
    return synthesize(params, SR, n).numpy().astype(np.float64), f0, amplitude, harmonics


def test_harmonic_analysis_recovers_a_known_voice():
    audio, f0, amplitude, harmonics = synthetic()
    wrong = np.full(f0.shape, 220.0 * 2 ** (20 / 1200))  # a steady pitch 20 cents sharp: refinement must fix it
    out = analysis.analyze(audio, wrong, SR)
    inner = slice(25, -25)
    cents = 1200 * np.log2(out["f0"][inner] / f0[inner])
    assert np.percentile(np.abs(cents), 95) < 1.0
    assert np.percentile(np.abs(20 * np.log10(out["amplitude"][inner] / amplitude[inner])), 95) < 0.05
    assert np.abs(out["harmonics"][inner] - harmonics[inner]).sum(1).mean() < 0.01
    assert 20 * np.log10(out["noise"][inner].mean()) < -70  # nothing but harmonics in there
    # Silence: zero harmonic rows; frames cover the audio.
    silent = analysis.analyze(np.zeros(SR), np.full(analysis.n_frames_for(SR, SR), 300.0), SR)
    assert silent["harmonics"].shape == (251, 60) and not silent["harmonics"].any()


def test_noise_magnitudes_follow_the_filtered_noise_convention():
    n_frames = analysis.n_frames_for(4 * SR, SR)
    magnitudes = 0.05 * np.exp(-np.linspace(0, 3, 65))
    params = SynthParams(torch.full((n_frames,), 220.0), torch.zeros(n_frames), torch.zeros(n_frames, 60),
                         torch.tensor(np.tile(magnitudes, (n_frames, 1)), dtype=torch.float32), SR / 2)
    noise = FilteredNoise().get_signal(params, SR, 0, 4 * SR, seed=3).numpy()
    estimate = analysis.noise_magnitudes(noise, SR, n_frames, SR / 2)[30:-30]
    power_ratio = np.sqrt((estimate ** 2).mean(0)) / magnitudes
    assert 0.9 < np.median(power_ratio) < 1.1
    uniform = np.random.default_rng(0).uniform(-0.1, 0.1, 4 * SR)  # the convention's definition
    assert 0.09 < np.median(analysis.noise_magnitudes(uniform, SR, n_frames, SR / 2)) < 0.105


def test_loudness_of_a_full_scale_sine_is_zero_db():
    sine = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)
    assert abs(analysis.a_weighted_loudness(sine, SR)[125]) < 0.1
    assert analysis.a_weighted_loudness(np.zeros(SR), SR).min() == analysis.LOUDNESS_FLOOR_DB


def test_performance_is_deterministic_and_in_range():
    from music21 import corpus

    from engine.training.performance import chorale_voices

    voices = chorale_voices(corpus.parse("bach/bwv66.6"))
    violin = get_instrument("violin")
    a = perform(voices["bass"], violin, np.random.default_rng(3), 10.0)
    b = perform(voices["bass"], violin, np.random.default_rng(3), 10.0)
    assert a.events == b.events and np.array_equal(a.f0, b.f0)
    assert all(violin.low <= n.pitch <= violin.high for n in a.notes)
    assert all(x.offset <= y.onset + 1e-9 for x, y in zip(a.notes, a.notes[1:]))
    assert a.notes[-1].offset <= 10.0
    # No filter (NRPN) message after time 0, and consecutive notes on different channels: nothing changes under a
    # sounding voice (FluidSynth clicks when a filter changes there).
    assert not [raw for _, _, raw in a.events if raw[0] & 0xF0 == 0xB0 and raw[1] in (98, 99, 6, 38)]
    note_channels = [raw[0] & 0x0F for _, _, raw in sorted(a.events) if raw[0] & 0xF0 == 0x90]
    assert len(note_channels) == len(a.notes) and all(x != y for x, y in zip(note_channels, note_channels[1:]))
    assert set(note_channels) <= set(a.channel_filters) and 9 not in a.channel_filters


def test_musical_performance_is_legato_and_shapes_notes_by_their_place_in_the_phrase():
    """Notes touch inside a phrase; with the phrase arch as a level contour, notes early in a phrase grow (CC11 ends
    above where it starts) and notes late in it fade, on average over the notes of several chorale voices."""
    from music21 import corpus

    from engine.model import phrase_starts
    from engine.training.performance import chorale_voices, perform_musical

    flute, rises, falls, touching = get_instrument("flute"), [], [], 0
    for chorale in ("bach/bwv66.6", "bach/bwv269", "bach/bwv347"):
        for voice in ("soprano", "alto"):
            performance = perform_musical(chorale_voices(corpus.parse(chorale))[voice], flute,
                                          np.random.default_rng(1), 20.0)
            notes = performance.notes
            touching += sum(abs(x.offset - y.onset) < 1e-6 for x, y in zip(notes, notes[1:]))
            events = sorted(performance.events, key=lambda e: (e[0], e[1]))
            starts = phrase_starts(notes) + [len(notes)]
            for a, b in zip(starts, starts[1:]):
                begin, end = notes[a].onset, notes[b - 1].offset
                for note in notes[a:b]:
                    on, off = round(note.onset * 2000), round(note.offset * 2000)
                    channel = next(raw[0] & 0x0F for tick, order, raw in events
                                   if tick == on and raw[0] & 0xF0 == 0x90 and raw[1] == note.pitch)
                    cc11 = [raw[2] for tick, _, raw in events
                            if on <= tick < off and raw[0] == 0xB0 | channel and raw[1] == 11]
                    change = 40 * np.log10(cc11[-1] / cc11[0])
                    if note.offset <= begin + 0.4 * (end - begin):
                        rises.append(change)
                    elif note.onset >= begin + 0.6 * (end - begin) and note is not notes[b - 1]:
                        falls.append(change)
    assert touching > 20
    assert len(rises) > 10 and len(falls) > 10
    assert np.mean(rises) > 0.3 and np.mean(falls) < -0.3


def test_held_out_chorales_are_different_pieces():
    chosen = select_chorales(8, 3, seed=1)
    test = [(c, v) for c, split, v in chosen if split == "test"]
    train = [(c, v) for c, split, v in chosen if split == "train"]
    assert len(test) == 3 and len(train) == 8
    assert not {c for c, _ in test} & {c for c, _ in train}
    assert not {melody_key(v["soprano"]) for _, v in test} & {melody_key(v["soprano"]) for _, v in train}
    assert [c for c, _, _ in select_chorales(8, 3, seed=1)] == [c for c, _, _ in chosen]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "flute"
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed")
    build_soundfont_dataset(out, "flute", pieces=1, held_out=1, max_seconds=5.0, seed=2, quiet=True, sample_rate=SR)
    return out


@needs_fluidsynth
def test_tiny_dataset_layout_shapes_and_units(tiny):
    meta, splits = load_dataset(tiny)
    assert meta["format"] == "ddsp-dataset" and meta["version"] == 1 and meta["source"] == "soundfont"
    assert meta["sample_rate"] == SR and meta["max_hz"] == SR / 2 and meta["frame_rate"] == FRAME_RATE
    assert meta["program"] == 73 and meta["pitch_range"] == [60, 96]
    # per chorale a coverage performance and a musical one (another voice)
    assert len(splits["train"]) == 2 and len(splits["test"]) == 2 and not set(splits["train"]) & set(splits["test"])
    styles = [meta["pieces"][p]["style"] for p in splits["train"]]
    assert sorted(styles) == ["coverage", "musical"] and meta["n_harmonics"] == 100
    assert set(meta["coverage"]) == {"volume", "volume_fluctuation", "volume_peak_position", "vibrato",
                                     "brightness", "attack_noise"}
    assert all(len(c["hist"]) == 10 for c in meta["coverage"].values())
    for piece_id in splits["train"] + splits["test"]:
        with np.load(tiny / "pieces" / f"{piece_id}.npz") as raw:
            assert all(raw[k].dtype == np.float32 for k in raw.files)
        piece = load_piece(tiny, piece_id)
        n_frames = analysis.n_frames_for(piece["audio"].shape[0], SR)
        assert piece["f0"].shape == piece["amplitude"].shape == piece["loudness_db"].shape == (n_frames,)
        assert piece["harmonics"].shape == (n_frames, 100) and piece["noise"].shape == (n_frames, 65)
        assert piece["controls"].shape == (piece["notes"].shape[0], 6)
        assert (piece["f0"] > 20).all() and (piece["noise"] >= 0).all() and (piece["amplitude"] >= 0).all()
        sums = piece["harmonics"].sum(1)
        assert torch.all(((sums - 1).abs() < 1e-4) | (sums == 0))
        above = piece["f0"][:, None] * torch.arange(1, 101) >= SR / 2
        assert not piece["harmonics"][above].any()
        notes = piece["notes"].numpy()
        assert (notes[1:, 1] >= notes[:-1, 2] - 1e-6).all() and (notes[:, 2] > notes[:, 1]).all()
        # The controls are engine.expression's reading of the stored targets.
        again = extract_controls(piece_params(piece, meta["max_hz"]), notes_from_array(notes))
        assert torch.allclose(again, piece["controls"], atol=1e-5)


@needs_fluidsynth
def test_resynthesised_targets_sound_like_the_audio(tiny):
    meta, splits = load_dataset(tiny)
    for piece_id in splits["train"] + splits["test"]:
        piece = load_piece(tiny, piece_id)
        audio = piece["audio"].numpy()
        resynthesis = synthesize(piece_params(piece, meta["max_hz"]), SR, audio.shape[0]).numpy()
        distance = analysis.spectral_distance(audio, resynthesis, SR)
        assert distance["convergence"] < MAX_RESYNTHESIS_CONVERGENCE, distance
        silence = analysis.spectral_distance(audio, np.zeros_like(audio), SR)
        assert silence["convergence"] > 0.99  # the measure can fail


@needs_fluidsynth
def test_f0_follows_the_notes(tiny):
    meta, splits = load_dataset(tiny)
    for piece_id in splits["train"] + splits["test"]:
        piece = load_piece(tiny, piece_id)
        for pitch, onset, offset, _ in piece["notes"].tolist():
            a, b = int(math.ceil(onset * FRAME_RATE)) + 10, int(offset * FRAME_RATE) - 5
            if b - a < 10:
                continue
            cents = 1200 * np.log2(piece["f0"][a:b].numpy() / (440 * 2 ** ((pitch - 69) / 12)))
            assert abs(np.mean(cents)) < 25 and np.percentile(np.abs(cents), 90) < 60  # vibrato <= 0.4 semitone


@needs_fluidsynth
def test_an_interrupted_build_resumes_to_the_same_bytes(tiny, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    meta, splits = load_dataset(copy)
    (copy / "meta.json").unlink()
    victim = splits["test"][0]
    (copy / "pieces" / f"{victim}.npz").unlink()
    with pytest.raises(DatasetError, match="incomplete"):
        load_dataset(copy)
    build_soundfont_dataset(copy, "flute", pieces=1, held_out=1, max_seconds=5.0, seed=2, quiet=True, sample_rate=SR)
    assert np.array_equal(load_piece(copy, victim)["audio"], load_piece(tiny, victim)["audio"])
    assert load_dataset(copy)[0]["coverage"] == meta["coverage"]
    with pytest.raises(DatasetError, match="other settings"):
        build_soundfont_dataset(copy, "flute", pieces=1, held_out=1, max_seconds=5.0, seed=3, quiet=True,
                                sample_rate=SR)


@needs_fluidsynth
@pytest.mark.parametrize("where", ["pool", "ray"])
def test_a_build_on_a_pool_or_on_ray_writes_the_serial_bytes(tiny, tmp_path, where, request):
    """One task per piece (engine.runner): every file the same bytes as the serial build's."""
    from engine.runner import RunnerOptions

    runner = RunnerOptions(jobs=2) if where == "pool" else RunnerOptions(jobs=2, use_ray=True)
    if where == "ray":
        request.getfixturevalue("local_ray")
    out = tmp_path / "flute"
    build_soundfont_dataset(out, "flute", pieces=1, held_out=1, max_seconds=5.0, seed=2, quiet=True, sample_rate=SR,
                            runner=runner)
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files and Path("meta.json") in files
    for name in files:
        assert (out / name).read_bytes() == (tiny / name).read_bytes(), name


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two clarinet takes rendered by FluidSynth at 22.05 kHz stereo-mixed WAV; the first has its MIDI file."""
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed")
    from music21 import corpus

    from engine.training.performance import chorale_voices

    folder = tmp_path_factory.mktemp("recordings")
    clarinet = get_instrument("clarinet")
    work = tmp_path_factory.mktemp("work")
    truth = {}
    for k, chorale in enumerate(["bach/bwv66.6", "bach/bwv10.7"]):
        performance = perform(chorale_voices(corpus.parse(chorale))["soprano"], clarinet,
                              np.random.default_rng(k), 5.0)
        audio = render_performance(performance, clarinet.program, find_soundfont(), 22050, 0.5, work)
        sf.write(folder / f"take{k}.wav", audio, 22050)
        if k == 0:
            performance.write_midi(folder / f"take{k}.mid", clarinet.program)
        truth[f"take{k}"] = performance.notes
    (folder / "notes.txt").write_text("not audio: ignored")
    return folder, truth


@needs_fluidsynth
def test_recordings_dataset_with_and_without_midi(recordings, tmp_path):
    folder, truth = recordings
    out = tmp_path / "mine"
    meta = build_recordings_dataset(folder, out, "mine", program=71, quiet=True, sample_rate=SR)
    assert meta["source"] == "recordings" and meta["program"] == 71 and meta["soundfont"] is None
    assert sorted(meta["splits"]["train"] + meta["splits"]["test"]) == ["take0", "take1"]
    assert len(meta["splits"]["test"]) == 1
    with_midi = load_piece(out, "take0")["notes"].numpy()
    expected = np.array([[n.pitch, n.onset, n.offset] for n in truth["take0"]])
    assert np.allclose(with_midi[:, :3], expected, atol=1e-3)
    found = load_piece(out, "take1")
    matched = sum(any(abs(g[1] - n.onset) < 0.06 and g[0] == n.pitch for g in found["notes"].tolist())
                  for n in truth["take1"])
    assert matched >= 0.7 * len(truth["take1"])
    n_frames = analysis.n_frames_for(found["audio"].shape[0], SR)
    assert found["harmonics"].shape == (n_frames, 100) and found["controls"].shape[1] == 6
    for pitch, onset, offset, _ in found["notes"].tolist():
        a, b = int(math.ceil(onset * FRAME_RATE)) + 10, int(offset * FRAME_RATE) - 5
        if b - a >= 10:
            cents = 1200 * np.log2(found["f0"][a:b].numpy() / (440 * 2 ** ((pitch - 69) / 12)))
            assert abs(np.median(cents)) < 50


def test_bad_input_gets_a_clear_error(tmp_path, capsys):
    from engine.cli import main

    with pytest.raises(DatasetError, match="unknown instrument 'kazoo'.*violin"):
        build_soundfont_dataset(tmp_path / "x", "kazoo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .wav or .flac recordings"):
        build_recordings_dataset(tmp_path / "empty", tmp_path / "y", "mine")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "take.wav").write_text("this is not audio")
    with pytest.raises(DatasetError, match="cannot read take.wav as audio"):
        build_recordings_dataset(tmp_path / "fake", tmp_path / "z", "mine")
    assert not (tmp_path / "z" / "meta.json").exists()
    assert "error: take: cannot read take.wav as audio" in capsys.readouterr().err  # named as it failed
    assert main(["dataset", "--instrument", "kazoo", "--out", str(tmp_path / "w")]) == 1
    assert main(["dataset", "--recordings", str(tmp_path / "empty"), "--out", str(tmp_path / "v")]) == 1
    assert main(["dataset", "--out", str(tmp_path / "u")]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 3 and "unknown instrument" in lines[0] and "no .wav" in lines[1]
