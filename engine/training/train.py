"""Training of a neural preset: `python -m engine train --instrument flute --data data/flute --out presets/flute`.

Two stages (see docs/presets.md):
- regression on the dataset's analysis targets. Synthesis: random 2 s crops of all training pieces; L1 on f0 cents
  (from the note pitch) and amplitude dB, cross-entropy on the harmonic distribution, L1 on noise band dB, all over
  the frames where a note sounds.
- then `spectral_steps` through the synthesizer (engine.training.spectral): the crops rendered from the network's
  amplitude, harmonics and noise at the true f0, multi-resolution STFT loss against the real audio, plus the
  regression terms at a small weight (f0 stays explicit: its head keeps the regression loss).
- optionally `adversarial_steps` more with a multi-resolution spectrogram discriminator (engine.training.adversarial):
  its least-squares GAN and feature-matching terms added to the spectral stage's loss, at a constant small rate.
- then the expression generator (`train_expression`): random runs of up to 64 notes of the *musical* pieces (all
  pieces if the dataset has none), MSE on the six pooled controls; every sixth musical piece is kept aside and the
  weights that predict those best are kept. `--expression-only` retrains just this stage on a finished checkpoint.
Adam with a cosine learning-rate decay, fixed seeds, one torch thread by default. Progress on
a tqdm bar and in `<runs>/train.log`; a checkpoint (`<runs>/checkpoint.pt`: networks, optimisers, step, RNG
states) every `--checkpoint-every` steps, so `--resume` continues where it stopped. At the end the preset folder
gets `model.pt` and `preset.json` (metrics come from `python -m engine evaluate`).
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from daw_bridge.files import write_atomic
from ..expression import extract_controls, to_db
from ..model import (N_NOTE_FEATURES, WEIGHTS_FILE, ExpressionNet, SynthesisNet, audible_mask, decode, frame_owners,
                    masked_log_softmax, note_features, note_pitch_hz, save_weights, synthesis_features)
from ..notes import Note
from . import adversarial, spectral
from ..params import FRAME_RATE, N_HARMONICS, PARAM_TENSORS, SynthParams

VERSION = 1


class TrainError(ValueError):
    """Bad dataset or arguments; one line says what."""


# --------------------------------------------------------------------------------------------------- dataset
def load_dataset(folder: str | Path) -> tuple[dict, dict[str, dict]]:
    """The dataset folder (meta.json + pieces/<id>.npz, see docs/presets.md) -> (meta, {piece id: arrays})."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as error:
        raise TrainError(f"no dataset at {folder}: cannot read meta.json ({error})") from None
    if meta.get("format") != "ddsp-dataset":
        raise TrainError(f"{folder}/meta.json is not a ddsp-dataset (format {meta.get('format')!r})")
    pieces = {}
    for split in ("train", "test"):
        for piece_id in meta["splits"][split]:
            pieces[piece_id] = load_piece(folder / "pieces" / f"{piece_id}.npz", meta.get("n_harmonics", N_HARMONICS))
    return meta, pieces


def piece_style(meta: dict, piece_id: str) -> str:
    """"musical" (a player's default performance) or "coverage" (every control value), from the build record."""
    return meta.get("pieces", {}).get(piece_id, {}).get("style", "coverage")


def load_piece(path: str | Path, n_harmonics: int = N_HARMONICS) -> dict:
    try:
        with np.load(path) as data:
            piece = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise TrainError(f"cannot read piece {path}: {error}") from None
    missing = {"audio", "f0", "amplitude", "harmonics", "noise", "notes", "controls"} - set(piece)
    if missing:
        raise TrainError(f"piece {path} lacks {', '.join(sorted(missing))}")
    if piece["harmonics"].shape[-1] != n_harmonics or piece["controls"].shape[-1] != 6:
        raise TrainError(f"piece {path}: harmonics must have {n_harmonics} columns and controls 6")
    return piece


def piece_notes(piece: dict) -> list[Note]:
    return [Note(int(p), float(on), float(off), int(v), id=f"n{i}")
            for i, (p, on, off, v) in enumerate(piece["notes"].tolist())]


def piece_params(piece: dict, max_hz: float) -> SynthParams:
    return SynthParams(*(torch.from_numpy(np.asarray(piece[k], dtype=np.float32)) for k in PARAM_TENSORS),
                       max_hz=max_hz)


@dataclass
class PreparedPiece:
    """Network inputs and regression targets of one piece, all (frames, ...) float32."""
    features: torch.Tensor  # (F, 15)
    cents: torch.Tensor  # (F,)
    amp_db: torch.Tensor  # (F,)
    harmonics: torch.Tensor  # (F, 60)
    noise_db: torch.Tensor  # (F, 65)
    f0: torch.Tensor  # (F,)
    on: torch.Tensor  # (F,) 1 where a note sounds
    note_features: torch.Tensor  # (n, 14)
    controls: torch.Tensor  # (n, 6)
    audio: np.ndarray | None = None  # (samples,) the real audio, for training through the synthesizer
    gate: np.ndarray | None = None  # (samples,) the render's note gate


def prepare_piece(piece: dict, sample_rate: int | None = None) -> PreparedPiece:
    """Network inputs and targets of a piece; with `sample_rate`, also its audio and note gate."""
    notes = piece_notes(piece)
    controls = torch.from_numpy(np.asarray(piece["controls"], dtype=np.float32))
    f0 = torch.from_numpy(np.asarray(piece["f0"], dtype=np.float32))
    n_frames = f0.shape[0]
    owner = frame_owners(notes, n_frames)
    pitch_hz = note_pitch_hz(notes, owner)
    cents = (1200.0 * torch.log2(f0.clamp_min(1.0) / pitch_hz)).clamp(-300, 300)
    return PreparedPiece(
        features=synthesis_features(notes, controls, n_frames), cents=cents,
        amp_db=to_db(torch.from_numpy(np.asarray(piece["amplitude"], dtype=np.float32))),
        harmonics=torch.from_numpy(np.asarray(piece["harmonics"], dtype=np.float32)),
        noise_db=to_db(torch.from_numpy(np.asarray(piece["noise"], dtype=np.float32))),
        f0=f0, on=torch.from_numpy((owner >= 0).astype(np.float32)), note_features=note_features(notes),
        controls=controls,
        audio=np.asarray(piece["audio"], dtype=np.float32) if sample_rate else None,
        gate=spectral.piece_gate(notes, piece["audio"].shape[0], sample_rate) if sample_rate else None)


def vibrato_rate(pieces: list[dict]) -> float:
    """Median 3-9 Hz peak frequency of the f0 deviation over the training notes with clear vibrato (5.5 if none)."""
    rates = []
    for piece in pieces:
        f0 = np.asarray(piece["f0"], dtype=np.float64)
        for note, row in zip(piece_notes(piece), piece["controls"]):
            a, b = int(round(note.onset * FRAME_RATE)), int(round(note.offset * FRAME_RATE))
            if row[3] < 0.1 or b - a < 100:
                continue
            d = 12 * np.log2(np.maximum(f0[a:b], 1e-6) / (440.0 * 2 ** ((note.pitch - 69) / 12)))
            spectrum = np.abs(np.fft.rfft((d - d.mean()) * np.hanning(b - a)))
            freqs = np.fft.rfftfreq(b - a, 1.0 / FRAME_RATE)
            band = (freqs >= 3.0) & (freqs <= 9.0)
            rates.append(float(freqs[band][np.argmax(spectrum[band])]))
    return round(float(np.median(rates)), 3) if rates else 5.5


# ---------------------------------------------------------------------------------------------------- batches
def synthesis_batch(pieces: list[PreparedPiece], rng: random.Random, batch: int, frames: int) -> dict:
    """Random crops (length-weighted piece choice) -> dict of (batch, frames, ...) tensors, zero-padded."""
    weights = [p.f0.shape[0] for p in pieces]
    out = {k: [] for k in ("features", "cents", "amp_db", "harmonics", "noise_db", "f0", "on")}
    for piece in rng.choices(pieces, weights=weights, k=batch):
        n = piece.f0.shape[0]
        start = rng.randrange(max(n - frames, 0) + 1)
        for key in out:
            x = getattr(piece, key)[start:start + frames]
            if x.shape[0] < frames:
                x = torch.cat([x, x.new_zeros(frames - x.shape[0], *x.shape[1:])])
            out[key].append(x)
    return {k: torch.stack(v) for k, v in out.items()}


def expression_batch(pieces: list[PreparedPiece], rng: random.Random, batch: int, length: int) -> dict:
    """Random runs of up to `length` notes -> features (B, L, 9), controls (B, L, 6), mask (B, L)."""
    feats, ctrls, masks = [], [], []
    for piece in rng.choices(pieces, weights=[p.controls.shape[0] for p in pieces], k=batch):
        n = piece.controls.shape[0]
        start = rng.randrange(max(n - length, 0) + 1)
        f, c = piece.note_features[start:start + length], piece.controls[start:start + length]
        pad = length - f.shape[0]
        feats.append(torch.cat([f, f.new_zeros(pad, f.shape[1])]))
        ctrls.append(torch.cat([c, c.new_zeros(pad, 6)]))
        masks.append(torch.cat([torch.ones(f.shape[0]), torch.zeros(pad)]))
    return {"features": torch.stack(feats), "controls": torch.stack(ctrls), "mask": torch.stack(masks)}


def synthesis_losses(net: SynthesisNet, batch: dict, max_hz: float) -> dict[str, torch.Tensor]:
    out = decode(net(batch["features"]), net.n_harmonics)
    on = batch["on"]
    count = on.sum().clamp_min(1.0)
    voiced = on * (batch["harmonics"].sum(-1) > 0.5)
    log_p = masked_log_softmax(out["harmonic_logits"], audible_mask(batch["f0"], max_hz, net.n_harmonics))
    cross_entropy = -(batch["harmonics"] * log_p).sum(-1)
    return {
        "cents": ((out["cents"] - batch["cents"]).abs() * on).sum() / count / 100.0,
        "amp": ((out["amp_db"] - batch["amp_db"]).abs() * on).sum() / count / 10.0,
        "harmonics": (cross_entropy * voiced).sum() / voiced.sum().clamp_min(1.0),
        "noise": ((out["noise_db"] - batch["noise_db"]).abs().mean(-1) * on).sum() / count / 10.0,
    }


def expression_loss(net: ExpressionNet, batch: dict) -> torch.Tensor:
    error = ((net(batch["features"]) - batch["controls"]) ** 2).mean(-1)
    return (error * batch["mask"]).sum() / batch["mask"].sum().clamp_min(1.0)


# -------------------------------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    instrument: str
    data: str
    out: str
    steps: int = 2500
    batch: int = 8
    crop_frames: int = 500
    channels: int = 96
    dilations: list = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 1, 2])
    expression_hidden: int = 32
    expression_steps: int = 1500
    expression_batch: int = 16
    expression_notes: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    checkpoint_every: int = 250
    runs: str = ""
    threads: int = 1
    spectral_steps: int = 0
    spectral_batch: int = 4
    spectral_frames: int = 200
    spectral_learning_rate: float = 3e-4
    spectral_regression_weight: float = 0.1
    adversarial_steps: int = 0
    adversarial_learning_rate: float = 1e-4


def train(config: TrainConfig, resume: bool = False, progress: bool = True, expression_only: bool = False) -> dict:
    """Train both generators and write the preset folder; -> summary (steps, losses, seconds). `expression_only`:
    keep the synthesis generator of the checkpoint in `runs` and train the expression generator again."""
    from tqdm import tqdm

    torch.set_num_threads(config.threads)
    runs = Path(config.runs or Path("runs") / config.instrument)
    runs.mkdir(parents=True, exist_ok=True)
    meta, pieces = load_dataset(config.data)
    train_ids = list(meta["splits"]["train"])
    if not train_ids:
        raise TrainError(f"{config.data}: the train split is empty")
    max_hz = float(meta["max_hz"])
    sample_rate = int(meta["sample_rate"])
    through_synth = config.spectral_steps + config.adversarial_steps > 0
    prepared = [prepare_piece(pieces[i], sample_rate if through_synth else None) for i in train_ids]
    musical = [p for i, p in zip(train_ids, prepared) if piece_style(meta, i) == "musical"] or prepared

    torch.manual_seed(config.seed)
    synthesis = SynthesisNet(config.channels, config.dilations, int(meta.get("n_harmonics", N_HARMONICS)),
                             prepared[0].noise_db.shape[-1])
    opt_s = torch.optim.Adam(synthesis.parameters(), lr=config.learning_rate)
    disc = adversarial.MultiResolutionDiscriminator(sample_rate) if config.adversarial_steps else None
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.adversarial_learning_rate, betas=(0.8, 0.99)) \
        if disc is not None else None
    expression: ExpressionNet | None = None
    rng = random.Random(config.seed)
    step, seconds = 0, 0.0
    checkpoint = runs / "checkpoint.pt"
    if expression_only and not checkpoint.exists():
        raise TrainError(f"--expression-only needs a finished training: no checkpoint in {runs}")
    if (resume or expression_only) and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        synthesis.load_state_dict(state["synthesis"])
        opt_s.load_state_dict(state["opt_s"])
        step, seconds = state["step"], state["seconds"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if disc is not None and state.get("discriminator") is not None:
            disc.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
        if state.get("expression") is not None and not expression_only:
            expression = ExpressionNet(**state.get("expression_config", {
                "hidden": config.expression_hidden, "n_features": state["expression"]["inp.weight"].shape[1]}))
            expression.load_state_dict(state["expression"])
    log = open(runs / "train.log", "a")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume at step ' + str(step) if step else 'start'}"
          f"{' (expression only)' if expression_only else ''}: {json.dumps(asdict(config))}", file=log, flush=True)

    def save_checkpoint():
        state = {"synthesis": synthesis.state_dict(), "opt_s": opt_s.state_dict(), "step": step, "seconds": seconds,
                 "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "config": asdict(config),
                 "expression": None if expression is None else expression.state_dict(),
                 "expression_config": None if expression is None else expression.config,
                 "discriminator": None if disc is None else disc.state_dict(),
                 "opt_d": None if opt_d is None else opt_d.state_dict()}
        write_atomic(checkpoint, lambda tmp: torch.save(state, tmp))

    losses: dict[str, float] = {}
    spectral_end = config.steps + config.spectral_steps
    total = spectral_end + config.adversarial_steps
    if expression_only and step < total:
        raise TrainError(f"--expression-only needs a finished training: the checkpoint in {runs} is at step {step} "
                         f"of {total} (run with --resume first)")
    spectral_loss = spectral.spectral_loss_fn(sample_rate) if through_synth else None
    bar = tqdm(total=total, initial=step, desc=f"train {config.instrument}", unit="step",
               disable=not progress, dynamic_ncols=True)
    while step < total:
        started = time.perf_counter()
        if step < config.steps:
            lr = config.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / config.steps)))
            terms = synthesis_losses(synthesis, synthesis_batch(prepared, rng, config.batch, config.crop_frames),
                                     max_hz)
        else:  # through the synthesizer
            if step < spectral_end:
                progress_s = (step - config.steps) / config.spectral_steps
                lr = config.spectral_learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_s)))
            else:
                lr = config.adversarial_learning_rate
            terms = {k: config.spectral_regression_weight * v for k, v in synthesis_losses(
                synthesis, synthesis_batch(prepared, rng, config.spectral_batch, config.spectral_frames),
                max_hz).items()}
            crops = spectral.crop_audio_batch(prepared, rng, config.spectral_batch, config.spectral_frames,
                                              sample_rate)
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            audio = spectral.render_crops(decode(synthesis(crops["features"]), synthesis.n_harmonics), crops,
                                          sample_rate, max_hz, generator)
            terms["spectral"] = spectral_loss(audio[:, None], crops["audio"][:, None])
            if step >= spectral_end:  # the adversarial fine-tune: the discriminator's step, then its terms
                d_loss = adversarial.discriminator_loss(disc, crops["audio"], audio)
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                terms |= adversarial.generator_terms(disc, crops["audio"], audio)
        for group in opt_s.param_groups:
            group["lr"] = lr
        loss = sum(terms.values())
        opt_s.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(synthesis.parameters(), 1.0)
        opt_s.step()
        step += 1
        seconds += time.perf_counter() - started
        current = {k: float(v.detach()) for k, v in terms.items()} | {"synthesis": float(loss.detach())}
        if step > spectral_end:
            current["discriminator"] = float(d_loss.detach())
        losses = {k: 0.98 * losses.get(k, v) + 0.02 * v for k, v in current.items()} if losses else current
        bar.update(1)
        bar.set_postfix(loss=f"{losses['synthesis']:.3f}")
        if step % 50 == 0 or step == total:
            print(f"step {step} lr {lr:.2e} " + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
                  + f" time {seconds:.0f}s", file=log, flush=True)
        if step % config.checkpoint_every == 0 or step == total:
            save_checkpoint()
    bar.close()
    if expression is None:
        started = time.perf_counter()
        expression = train_expression(config, musical, log)
        seconds += time.perf_counter() - started
        save_checkpoint()
    write_preset(config, meta, synthesis, expression, [pieces[i] for i in train_ids], step, seconds)
    print(f"# wrote preset {config.out} at step {step}", file=log, flush=True)
    log.close()
    return {"step": step, "seconds": seconds, "losses": losses}


def train_expression(config: TrainConfig, pieces: list[PreparedPiece], log=None) -> ExpressionNet:
    """The expression generator, trained on `pieces` (the musical ones): AdamW with a cosine decay over
    `config.expression_steps`, dropout; every sixth piece (when there are six or more) is held aside and the weights
    with the lowest MSE on it are kept, since the data are small and the net overfits them quickly."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed + 1)
    held = pieces[5::6] if len(pieces) >= 6 else []
    fit = [p for i, p in enumerate(pieces) if i % 6 != 5] if held else pieces
    net = ExpressionNet(config.expression_hidden, n_features=N_NOTE_FEATURES)
    net.start_at(torch.cat([p.controls for p in fit]).mean(0))
    opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=0.05)
    best, best_state = math.inf, None
    if held and log is not None:
        mean = torch.cat([p.controls for p in fit]).mean(0)
        baseline = float(torch.cat([((p.controls - mean) ** 2).mean(-1) for p in held]).mean())
        print(f"expression: {len(fit)} pieces, {len(held)} held aside (mean predictor mse {baseline:.5f})", file=log,
              flush=True)
    for step in range(config.expression_steps):
        for group in opt.param_groups:
            group["lr"] = config.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step
                                                                                    / config.expression_steps)))
        net.train()
        loss = expression_loss(net, expression_batch(fit, rng, config.expression_batch, config.expression_notes))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if held and ((step + 1) % 50 == 0 or step + 1 == config.expression_steps):
            error = expression_error(net, held)
            if error < best:
                best, best_state = error, {k: v.clone() for k, v in net.state_dict().items()}
            if log is not None:
                print(f"expression step {step + 1} loss {float(loss.detach()):.5f} held-aside mse {error:.5f}", file=log,
                      flush=True)
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval()


def expression_error(net: ExpressionNet, pieces: list[PreparedPiece]) -> float:
    """Mean squared error over every note and control of whole pieces (the net in eval mode)."""
    net.eval()
    with torch.no_grad():
        errors = [((net(p.note_features[None])[0] - p.controls) ** 2).mean(-1) for p in pieces]
    return float(torch.cat(errors).mean())


def write_preset(config: TrainConfig, meta: dict, synthesis: SynthesisNet, expression: ExpressionNet,
                 train_pieces: list[dict], step: int, seconds: float) -> None:
    out = Path(config.out)
    save_weights(out / WEIGHTS_FILE, synthesis, expression)
    frames = sum(int(p["f0"].shape[0]) for p in train_pieces)
    n_params = sum(p.numel() for p in synthesis.parameters()) + sum(p.numel() for p in expression.parameters())
    document = {
        "name": out.name, "kind": "neural", "version": VERSION, "instrument": config.instrument,
        "description": f"Neural {config.instrument} trained on "
                       f"{Path(str(meta.get('soundfont') or meta.get('source', '?'))).name} renders "
                       f"(GM program {meta.get('program')})",
        "program": meta.get("program"), "pitch_range": meta.get("pitch_range"),
        "max_hz": float(meta["max_hz"]), "training_sample_rate": meta.get("sample_rate"),
        "frame_rate": FRAME_RATE, "weights": WEIGHTS_FILE, "parameters": n_params,
        "n_harmonics": synthesis.n_harmonics, "legato_bridge": True,
        "vibrato_rate_hz": vibrato_rate(train_pieces),
        "reverb": {"rt60": 0.8, "seconds": 1.0, "wet": 0.12, "seed": 0, "sample_rate": 16000},
        "training": {"data": str(config.data), "source": meta.get("source"), "soundfont": meta.get("soundfont"),
                     "train_pieces": len(meta["splits"]["train"]), "test_pieces": len(meta["splits"]["test"]),
                     "train_minutes": round(frames / FRAME_RATE / 60.0, 2), "steps": step,
                     "cpu_seconds": round(seconds, 1), "config": asdict(config)},
    }
    from daw_bridge.files import write_json_atomic

    write_json_atomic(out / "preset.json", document)


# --------------------------------------------------------------------------------------------- synthetic data
def write_synthetic_dataset(folder: str | Path, n_pieces: int = 6, seconds: float = 4.0, sample_rate: int = 16000,
                            seed: int = 0, program: int = 73, instrument: str = "synthetic") -> Path:
    """A tiny dataset in the dataset format, made by the parametric instrument (exact targets, no FluidSynth):
    random melodies (pitch 60-76) with random controls, rendered at `sample_rate`. For tests and smoke runs."""
    from ..dsp import synthesize
    from .analysis import frame_loudness_db
    from ..render import note_gate
    from ..synthesis import ParametricInstrument

    folder = Path(folder)
    (folder / "pieces").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    max_hz = sample_rate / 2.0
    instrument_model = ParametricInstrument(1.0 / np.arange(1, 61) ** 0.7, [1.0, 0.5, 0.3], -40.0, max_hz)
    ids = []
    for index in range(n_pieces):
        notes, t = [], 0.1
        while t < seconds - 0.5:
            duration = float(rng.choice([0.25, 0.5, 0.75, 1.0]))
            notes.append(Note(int(rng.integers(60, 77)), t, min(t + duration * 0.9, seconds - 0.2),
                              int(rng.integers(50, 120)), id=f"n{len(notes)}"))
            t += duration
        controls = torch.from_numpy(rng.uniform(0.1, 0.8, (len(notes), 6)).astype(np.float32))
        n_frames = int(seconds * FRAME_RATE)
        params = instrument_model.generate(notes, controls, n_frames)
        n_samples = int(seconds * sample_rate)
        audio = synthesize(params, sample_rate, n_samples, seed=index).numpy() * note_gate(notes, n_samples,
                                                                                             sample_rate)
        piece_id = f"synthetic-{index:03d}"
        np.savez(folder / "pieces" / f"{piece_id}.npz", audio=audio.astype(np.float32), f0=params.f0.numpy(),
                 amplitude=params.amplitude.numpy(), harmonics=params.harmonics.numpy(), noise=params.noise.numpy(),
                 notes=np.array([[n.pitch, n.onset, n.offset, n.velocity] for n in notes], dtype=np.float32),
                 controls=extract_controls(params, notes).numpy(),
                 loudness_db=frame_loudness_db(audio, sample_rate, n_frames))
        ids.append(piece_id)
    n_test = max(1, n_pieces // 3)
    meta = {"format": "ddsp-dataset", "version": 1, "instrument": instrument, "program": program,
            "source": "engine.training.train.write_synthetic_dataset (parametric instrument)", "soundfont": None,
            "sample_rate": sample_rate, "max_hz": max_hz, "frame_rate": FRAME_RATE, "pitch_range": [60, 76],
            "splits": {"train": ids[:-n_test], "test": ids[-n_test:]}, "coverage": {}}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return folder

