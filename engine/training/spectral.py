"""Training through the synthesizer: render the network's parameters with a differentiable harmonic-plus-noise synth
and compare with the real audio by a multi-resolution STFT loss (auraloss), as DDSP and MIDI-DDSP train.

f0 stays explicit: the crops are rendered at the dataset's f0 (the network's f0 head keeps its regression loss), since
spectral losses are poor at pitch. The synth here is the training twin of engine.dsp: the same parameter units (a
flat noise magnitude m has the power of uniform noise in [-m, m], amplitude 1 is a full-scale sine), the same band
limit, made for short crops (cumulative-sum phase, noise by frequency sampling per frame) rather than exact long
renders. FFT sizes scale with the sample rate: DDSP's 2048..64 at 16 kHz become 6144..192 worth, rounded to powers of
two.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import core
from ..model import audible_mask, masked_log_softmax
from ..params import FRAME_RATE
from ..render import note_gate


def upsample_frames(x: torch.Tensor, n_samples: int, sample_rate: int) -> torch.Tensor:
    """Linear interpolation of frame values to samples. x: (batch, frames, ...) -> (batch, n_samples, ...); sample
    n sits at frame position n * FRAME_RATE / sample_rate, as in engine.core."""
    frames = x.shape[1]
    position = torch.arange(n_samples, dtype=torch.float64) * (FRAME_RATE / sample_rate)
    index = position.floor().clamp(0, frames - 2).long()
    frac = (position - index).clamp(0, 1).to(x.dtype)
    shape = (1, n_samples) + (1,) * (x.ndim - 2)
    return torch.lerp(x[:, index], x[:, index + 1], frac.reshape(shape))


def harmonic_audio(f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: int, max_hz: float) -> torch.Tensor:
    """f0 (batch, frames) Hz, amplitudes (batch, frames, H) linear per harmonic -> (batch, samples) float32, with
    samples = (frames - 1) * sample_rate / FRAME_RATE; harmonics at or above max_hz are silent."""
    n_samples = (f0.shape[1] - 1) * sample_rate // FRAME_RATE
    f0_up = upsample_frames(f0.double(), n_samples, sample_rate)
    phase = torch.cumsum(2 * math.pi * f0_up / sample_rate, 1)
    phase = torch.remainder(phase, 2 * math.pi).float()
    numbers = torch.arange(1, amplitudes.shape[-1] + 1, dtype=torch.float32)
    audible = (f0[..., None] * numbers < max_hz).float()
    amp_up = upsample_frames(amplitudes * audible, n_samples, sample_rate)
    return (torch.sin(phase[..., None] * numbers) * amp_up).sum(-1)


def noise_audio(magnitudes: torch.Tensor, sample_rate: int, max_hz: float, generator: torch.Generator) -> torch.Tensor:
    """Band magnitudes (batch, frames, B) over 0..max_hz -> filtered noise (batch, samples): white noise shaped per
    frame hop in the frequency domain (bins interpolated between band centres, zero above max_hz), 50 % overlap-add
    of sine-windowed grains two hops long: engine.core's band responses and grain window, so the power matches
    engine.core.noise_block's."""
    batch, frames, _ = magnitudes.shape
    hop = sample_rate // FRAME_RATE
    n_fft = 2 * hop
    n_samples = (frames - 1) * hop
    response = core.band_responses(magnitudes, max_hz, sample_rate, n_fft)
    spectrum = torch.complex(torch.randn(batch, frames, n_fft // 2 + 1, generator=generator),
                             torch.randn(batch, frames, n_fft // 2 + 1, generator=generator)) * response
    window, scale = core.grain_window(n_fft, hop)
    grains = torch.fft.irfft(spectrum, n=n_fft) * window * scale  # (batch, frames, n_fft), grain k centred on k*hop
    out = torch.nn.functional.fold(grains.transpose(1, 2), output_size=(1, (frames - 1) * hop + n_fft),
                                   kernel_size=(1, n_fft), stride=(1, hop))
    return out.reshape(batch, -1)[:, hop:hop + n_samples]


def fft_sizes(sample_rate: int) -> list[int]:
    """DDSP's 2048, 1024, 512, 256, 128, 64 at 16 kHz, scaled to the rate (powers of two, same durations)."""
    scale = 2 ** round(math.log2(sample_rate / 16000))
    return [n * scale for n in (2048, 1024, 512, 256, 128, 64)]


def spectral_loss_fn(sample_rate: int):
    """auraloss's MultiResolutionSTFTLoss (spectral convergence + log magnitude) at the rate's FFT sizes."""
    import auraloss

    sizes = fft_sizes(sample_rate)
    return auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes],
                                                 win_lengths=sizes, w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0)


def crop_audio_batch(pieces: list, rng, batch: int, frames: int, sample_rate: int) -> dict:
    """Random crops with their audio: features (B, F, 15), f0 (B, F), on (B, F), gate (B, S), audio (B, S) with
    S = (F - 1) * sample_rate / FRAME_RATE samples from the crop's first frame."""
    hop = sample_rate // FRAME_RATE
    n_samples = (frames - 1) * hop
    out = {k: [] for k in ("features", "f0", "on", "gate", "audio")}
    weights = [p.f0.shape[0] for p in pieces]
    for piece in rng.choices(pieces, weights=weights, k=batch):
        start = rng.randrange(max(piece.f0.shape[0] - frames, 0) + 1)
        for key in ("features", "f0", "on"):
            x = getattr(piece, key)[start:start + frames]
            out[key].append(torch.cat([x, x.new_zeros(frames - x.shape[0], *x.shape[1:])]))
        for key in ("gate", "audio"):
            x = torch.as_tensor(getattr(piece, key)[start * hop:start * hop + n_samples])
            out[key].append(torch.cat([x, x.new_zeros(n_samples - x.shape[0])]))
    return {k: torch.stack(v) for k, v in out.items()}


def render_crops(out: dict[str, torch.Tensor], batch: dict, sample_rate: int, max_hz: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Decoded network outputs (B, F, ...) of a crop batch -> dry gated audio (B, S) at the batch's true f0."""
    on = batch["on"]
    f0 = batch["f0"]
    n_harmonics = out["harmonic_logits"].shape[-1]
    distribution = masked_log_softmax(out["harmonic_logits"], audible_mask(f0, max_hz, n_harmonics)).exp()
    amplitude = 10.0 ** (out["amp_db"].clamp(-100, 6) / 20.0) * on
    harmonic = harmonic_audio(f0, distribution * amplitude[..., None], sample_rate, max_hz)
    noise = noise_audio(10.0 ** (out["noise_db"].clamp(-120, 0) / 20.0) * on[..., None], sample_rate, max_hz,
                        generator)
    return (harmonic + noise) * batch["gate"]


def piece_gate(notes, n_samples: int, sample_rate: int) -> np.ndarray:
    """The render's note gate for a piece (engine.render.note_gate), float32."""
    return np.asarray(note_gate(notes, n_samples, sample_rate), dtype=np.float32)
