"""An adversarial fine-tune after the spectral stage: a multi-resolution spectrogram discriminator (the MRD of
UnivNet / the STFT discriminators of HiFi-GAN-style vocoders) judges crops rendered from the synthesis network
against the real audio, with least-squares GAN losses and feature matching, as MIDI-DDSP adds an adversarial loss
because regression and spectral losses over-smooth the harmonic distribution.

Sized for a CPU: two resolutions, 16 channels, strided in frequency. The generator keeps the spectral loss and
the regression terms (engine.training.train), so the adversarial terms only add detail on top of them.
"""
from __future__ import annotations

import math

import torch
from torch import nn

ADVERSARIAL_WEIGHT = 0.1
FEATURE_MATCHING_WEIGHT = 0.5


def discriminator_fft_sizes(sample_rate: int) -> list[int]:
    """1024 and 2048 points at 48 kHz (about 21 and 43 ms), scaled to the rate as powers of two."""
    scale = 2 ** round(math.log2(sample_rate / 48000))
    return [max(256, int(n * scale)) for n in (1024, 2048)]


class SpectrogramDiscriminator(nn.Module):
    """audio (batch, samples) -> (logits (batch, 1, frames, bins'), features: one (batch, C, frames, bins') per
    layer) from the log magnitude spectrogram at one FFT size."""

    def __init__(self, n_fft: int, channels: int = 16):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.layers = nn.ModuleList([
            nn.Conv2d(1, channels, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(channels, channels, (3, 3), padding=(1, 1)),
        ])
        self.out = nn.Conv2d(channels, 1, (3, 3), padding=(1, 1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spectrum = torch.stft(audio, self.n_fft, self.hop, window=self.window, return_complex=True).abs()
        x = torch.log(spectrum.clamp_min(1e-5)).transpose(1, 2)[:, None]  # (batch, 1, frames, bins)
        features = []
        for layer in self.layers:
            x = nn.functional.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.out(x), features


class MultiResolutionDiscriminator(nn.Module):
    """One SpectrogramDiscriminator per FFT size of `discriminator_fft_sizes`."""

    def __init__(self, sample_rate: int, channels: int = 16):
        super().__init__()
        self.config = {"sample_rate": sample_rate, "channels": channels}
        self.discriminators = nn.ModuleList(SpectrogramDiscriminator(n, channels)
                                            for n in discriminator_fft_sizes(sample_rate))

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(audio) for d in self.discriminators]


def discriminator_loss(disc: MultiResolutionDiscriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: real crops toward 1, rendered ones toward 0. real, fake: (batch, samples)."""
    loss = torch.zeros(())
    for (real_logits, _), (fake_logits, _) in zip(disc(real), disc(fake.detach())):
        loss = loss + ((real_logits - 1) ** 2).mean() + (fake_logits ** 2).mean()
    return loss


def generator_terms(disc: MultiResolutionDiscriminator, real: torch.Tensor,
                    fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """The generator's weighted adversarial term (rendered crops toward 1) and feature matching (L1 between the
    discriminator's features of the rendered and the real crop, each layer's mean)."""
    adversarial, matching = torch.zeros(()), torch.zeros(())
    with torch.no_grad():
        real_outputs = disc(real)
    for (_, real_features), (fake_logits, fake_features) in zip(real_outputs, disc(fake)):
        adversarial = adversarial + ((fake_logits - 1) ** 2).mean()
        matching = matching + sum((f - r).abs().mean() for f, r in zip(fake_features, real_features)) \
            / len(fake_features)
    return {"adversarial": ADVERSARIAL_WEIGHT * adversarial, "feature_matching": FEATURE_MATCHING_WEIGHT * matching}
