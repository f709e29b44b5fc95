"""The training synth (engine.training.spectral) against the runtime synth (engine.dsp): same units, same band."""
import numpy as np
import torch

from engine.dsp import synthesize
from engine.params import FRAME_RATE, SynthParams
from engine.training import spectral

SR = 48000


def voice(n_frames: int = 251, noise: float = 0.0) -> SynthParams:
    t = torch.arange(n_frames) / FRAME_RATE
    f0 = 220.0 * 2 ** (0.2 * torch.sin(2 * np.pi * 5.5 * t) / 12)
    harmonics = 1.0 / torch.arange(1, 101, dtype=torch.float32).expand(n_frames, -1)
    harmonics = harmonics / harmonics.sum(1, keepdim=True)
    return SynthParams(f0, torch.full((n_frames,), 0.3), harmonics, torch.full((n_frames, 65), noise), 20000.0)


def rms_db(x) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def test_harmonic_part_matches_the_runtime_synth():
    params = voice()
    n = (params.n_frames - 1) * SR // FRAME_RATE
    runtime = synthesize(params, SR, n, seed=0).numpy()
    ours = spectral.harmonic_audio(params.f0[None], (params.amplitude[:, None] * params.harmonics)[None], SR,
                                   params.max_hz)[0].numpy()
    assert ours.shape == runtime.shape
    assert abs(rms_db(ours) - rms_db(runtime)) < 0.1
    loss = spectral.spectral_loss_fn(SR)
    same = float(loss(torch.tensor(ours)[None, None], torch.tensor(runtime)[None, None]))
    silent = float(loss(torch.tensor(ours)[None, None] * 0.1, torch.tensor(runtime)[None, None]))
    assert same < 0.2 * silent  # the loss sees the same sound (phases aside) and can tell a 20 dB change


def test_harmonics_above_the_band_are_silent():
    params = voice()
    f0 = torch.full((1, params.n_frames), 5000.0)
    amplitudes = torch.zeros(1, params.n_frames, 100)
    amplitudes[..., 4] = 0.5  # 25 kHz: above 20 kHz
    assert float(spectral.harmonic_audio(f0, amplitudes, SR, 20000.0).abs().max()) == 0.0


def test_noise_level_matches_the_runtime_synth():
    params = voice(noise=0.05)
    params.amplitude.zero_()
    n = (params.n_frames - 1) * SR // FRAME_RATE
    runtime = synthesize(params, SR, n, seed=0).numpy()
    ours = spectral.noise_audio(params.noise[None], SR, params.max_hz, torch.Generator().manual_seed(0))[0]
    assert ours.shape[0] == n
    assert abs(rms_db(ours.numpy()) - rms_db(runtime)) < 0.5
    spectrum = np.abs(np.fft.rfft(ours.numpy())) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SR)
    assert spectrum[freqs > 20500].sum() < 1e-3 * spectrum.sum()  # nothing above the band


def test_fft_sizes_scale_with_the_rate():
    assert spectral.fft_sizes(16000) == [2048, 1024, 512, 256, 128, 64]
    assert spectral.fft_sizes(48000) == [8192, 4096, 2048, 1024, 512, 256]
