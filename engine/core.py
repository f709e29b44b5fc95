"""Plain DSP functions in torch: frame -> sample interpolation, harmonic oscillator bank, filtered noise, reverb.

All work at any output sample rate from frame-rate parameters. A sample n of the output sits at frame position
n * frame_rate / sample_rate; parameters are interpolated linearly between the two frames around it. Long signals
are made in blocks whose boundaries are fixed in absolute time, so a block can be re-made alone with identical
samples (incremental re-render relies on this).
"""
from __future__ import annotations

import math

import torch

TWO_PI = 2.0 * math.pi
NOISE_OVERLAP = 2  # STFT frames per window length in filtered noise


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7):
    """DDSP's positive squashing for network outputs: max_value * sigmoid(x) ** log(exponent) + threshold."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def sample_frame_positions(start: int, stop: int, sample_rate: int, frame_rate: float, n_frames: int):
    """For samples [start, stop): index of the frame at or before each sample and the fraction past it.

    -> (index (T,) int64 clamped to [0, n_frames - 2], frac (T,) float32 in [0, 1]).
    """
    positions = torch.arange(start, stop, dtype=torch.float64) * (frame_rate / sample_rate)
    index = positions.floor().clamp(0, max(n_frames - 2, 0))
    frac = (positions - index).clamp(0.0, 1.0)
    return index.long(), frac.float()


PHASE_UNIT = 2 ** 40  # phase steps per turn: frame phases are accumulated as exact integers


def frame_phase_steps(f0: torch.Tensor, frame_rate: float, amplitude: torch.Tensor | None = None,
                      start: int = 0) -> torch.Tensor:
    """Phase of the fundamental at each frame time in exact integer steps of 1/PHASE_UNIT turn, wrapped to
    [0, PHASE_UNIT): (frames,) int64.

    f0: (frames,) Hz. The frequency is linear between frames, so the phase advances by the trapezoid
    2pi * (f_k + f_k+1) / 2 / frame_rate. Accumulated exactly, in integer units of 1/PHASE_UNIT turn: float32 would
    drift audibly within a minute, and exact sums let a phase restart give bit-identical phases after it.
    amplitude: (frames,) or None. When given, the phase restarts at 0 at every frame where this frame's and the
    previous frame's amplitude are both exactly 0 (inaudible: the harmonics are silent across that frame), so a note
    after a rest sounds the same whatever came before it and an edit moves the phase only up to the next silence
    (incremental re-render relies on this).
    start: the phase at the first frame, in steps (frames of a voice from the middle on: the phase there, which
    already holds any restart at that frame). The sums are exact, so frames [a, b) made from the phase at a equal
    frames [a, b) of the whole voice.
    """
    f0 = f0.detach().double()
    turns = 0.5 * (f0[:-1] + f0[1:]) / frame_rate
    steps = torch.round(torch.remainder(turns, 1.0) * PHASE_UNIT).long()
    total = torch.cat([torch.full((1,), int(start), dtype=torch.long), torch.cumsum(steps, 0) + int(start)])
    if amplitude is not None and amplitude.shape[0] > 1:
        silent = amplitude.detach()[:f0.shape[0]] == 0
        restart = torch.zeros(f0.shape[0], dtype=torch.bool)
        restart[1:silent.shape[0]] = silent[:-1] & silent[1:]
        frames = torch.arange(f0.shape[0])
        last_restart = torch.cummax(torch.where(restart, frames, torch.zeros_like(frames)), 0).values
        total = total - torch.where(last_restart > 0, total[last_restart], torch.zeros_like(total))
    return torch.remainder(total, PHASE_UNIT)


def frame_phases(f0: torch.Tensor, frame_rate: float, amplitude: torch.Tensor | None = None,
                 start: int = 0) -> torch.Tensor:
    """`frame_phase_steps` in radians (float64, wrapped to [0, 2pi))."""
    return frame_phase_steps(f0, frame_rate, amplitude, start).double() * (TWO_PI / PHASE_UNIT)


def sample_phases(f0: torch.Tensor, phases: torch.Tensor, index: torch.Tensor, frac: torch.Tensor,
                  frame_rate: float) -> torch.Tensor:
    """Exact phase of the fundamental at each sample (float32, wrapped), integrating the linear f0 from its frame.

    f0, phases: (frames,); index, frac: (T,) from `sample_frame_positions` -> (T,).
    """
    f_start = f0.detach().double()[index]
    f_end = f0.detach().double()[index + 1] if f0.shape[0] > 1 else f_start
    u = frac.double()
    advance = TWO_PI / frame_rate * (f_start * u + 0.5 * (f_end - f_start) * u * u)
    return torch.remainder(phases[index] + advance, TWO_PI).float()


def audible_harmonics(f0: torch.Tensor, n_harmonics: int, limit_hz: float) -> torch.Tensor:
    """Mask (frames, n_harmonics) of harmonics below `limit_hz` at this frame and both neighbours, so that no
    partial crosses the limit while it is interpolated between frames."""
    padded = torch.nn.functional.pad(f0.detach()[None, None], (1, 1), mode="replicate")[0, 0]
    highest = torch.stack([padded[:-2], padded[1:-1], padded[2:]]).amax(0)
    numbers = torch.arange(1, n_harmonics + 1, dtype=f0.dtype)
    return (highest[:, None] * numbers < limit_hz).to(f0.dtype)


def frames_per_period(sample_rate: int, frame_rate: int) -> int:
    """Fewest frames spanning a whole number of samples (1 at 48 kHz, 5 at 44.1 kHz)."""
    return frame_rate // math.gcd(sample_rate, frame_rate)


def harmonic_block(f0: torch.Tensor, harmonic_amplitudes: torch.Tensor, phases: torch.Tensor, frame0: int,
                   frame1: int, sample_rate: int, frame_rate: int,
                   workspace: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of harmonic sines from frame `frame0` to `frame1`, both multiples of `frames_per_period`.

    f0: (frames,) Hz; harmonic_amplitudes: (frames, K) linear, already zero where not audible; phases: (frames,)
    from `frame_phases`; all with at least frame1 + 1 frames -> (samples,) float32, samples from
    frame0 * sample_rate / frame_rate. Amplitudes are linear between frames; by linearity each sample is
    (1 - u) <sines, A_j> + u <sines, A_j+1>, computed as small batched matrix products per period.
    workspace: float32 with at least samples * K elements, reused for the sines (a fresh (samples, K) array on
    every block costs as much as the sines themselves: page faults), or None.
    """
    period = frames_per_period(sample_rate, frame_rate)
    period_samples = period * sample_rate // frame_rate
    start = frame0 * sample_rate // frame_rate
    stop = frame1 * sample_rate // frame_rate
    used = harmonic_amplitudes[frame0:frame1 + 1]
    active = (used > 0).any(0).nonzero()
    if active.numel() == 0:
        return torch.zeros(stop - start)
    k = int(active.max()) + 1
    index, frac = sample_frame_positions(start, stop, sample_rate, frame_rate, f0.shape[0])
    phase = sample_phases(f0, phases, index, frac, frame_rate)
    numbers = torch.arange(1, k + 1, dtype=torch.float32)
    if workspace is None:
        sines = torch.sin(phase[:, None] * numbers)
    else:
        sines = torch.mul(phase[:, None], numbers, out=workspace[:phase.shape[0] * k].view(-1, k))
        torch.sin(sines, out=sines)
    n_periods = (frame1 - frame0) // period
    corners = used[:, :k].unfold(0, period + 1, period)  # (periods, K, period + 1)
    per_frame = torch.bmm(sines.reshape(n_periods, period_samples, k), corners)  # (periods, samples, period + 1)
    local = (index[:period_samples] - frame0).reshape(1, period_samples, 1).expand(n_periods, -1, -1)
    u = frac[:period_samples].reshape(1, period_samples)
    at_start = per_frame.gather(2, local).squeeze(2)
    at_end = per_frame.gather(2, local + 1).squeeze(2)
    return torch.lerp(at_start, at_end, u).reshape(-1)


def noise_fft_size(sample_rate: int) -> int:
    """FFT size for filtered noise: the power of two nearest 10 ms, so band resolution is the same at any rate."""
    return 2 ** int(round(math.log2(sample_rate * 0.01)))


def band_responses(magnitudes: torch.Tensor, max_hz: float, sample_rate: int, n_fft: int) -> torch.Tensor:
    """Band magnitudes (..., frames, n_bands) over 0..max_hz -> per-bin magnitudes (..., frames, n_fft // 2 + 1).

    Linear interpolation between band centres; zero above max_hz.
    """
    n_bands = magnitudes.shape[-1]
    bins_hz = torch.arange(n_fft // 2 + 1, dtype=torch.float32) * (sample_rate / n_fft)
    position = (bins_hz / max_hz * (n_bands - 1)).clamp(0, n_bands - 1)
    low = position.floor().long().clamp_max(n_bands - 2)
    frac = position - low
    response = torch.lerp(magnitudes[..., low], magnitudes[..., low + 1], frac)
    return response * (bins_hz <= max_hz).float()


def grain_window(n_fft: int, hop: int) -> tuple[torch.Tensor, float]:
    """The sine window of filtered-noise grains (its square overlap-adds to a constant at 50 % overlap) and the scale
    that gives a flat magnitude m over the whole band the power of uniform noise in [-m, m] (m^2 / 3)."""
    window = torch.hann_window(n_fft, periodic=True).sqrt()
    return window, math.sqrt(n_fft * hop / float((window ** 2).sum()) / 6.0)


def noise_block(magnitudes: torch.Tensor, max_hz: float, sample_rate: int, frame_rate: float, first_stft: int,
                stop_stft: int, n_fft: int, generator: torch.Generator, first_frame: int = 0,
                voice_frames: int | None = None) -> tuple[int, torch.Tensor]:
    """Filtered noise from STFT frames [first_stft, stop_stft) made directly in the frequency domain.

    Each STFT frame j (centre sample j * hop, hop = n_fft / NOISE_OVERLAP) gets complex Gaussian bins shaped by the band
    magnitudes interpolated at its time, then inverse FFT, a sine window (its square overlap-adds to a constant,
    so the noise power does not ripple at the hop rate), overlap-add.
    magnitudes: (frames, n_bands), frames [first_frame, ...) of a voice of `voice_frames` frames (default: these
    are the whole voice) -> (first output sample, samples (n, ) float32) to add into the signal.
    """
    hop = n_fft // NOISE_OVERLAP
    n_stft = stop_stft - first_stft
    total = magnitudes.shape[0] if voice_frames is None else voice_frames
    centres = torch.arange(first_stft, stop_stft, dtype=torch.float64) * hop
    positions = (centres * (frame_rate / sample_rate)).clamp(0, total - 1)
    low = positions.floor().long().clamp_max(max(total - 2, 0))
    frac = (positions - low).float()[:, None]
    frame_mags = torch.lerp(magnitudes[low - first_frame], magnitudes[(low + 1).clamp_max(total - 1) - first_frame],
                            frac)
    response = band_responses(frame_mags, max_hz, sample_rate, n_fft)
    spectrum = torch.complex(torch.randn(n_stft, n_fft // 2 + 1, generator=generator),
                             torch.randn(n_stft, n_fft // 2 + 1, generator=generator)) * response
    window, scale = grain_window(n_fft, hop)
    grains = torch.fft.irfft(spectrum, n=n_fft) * window * scale
    out = torch.nn.functional.fold(grains.T[None], output_size=(1, (n_stft - 1) * hop + n_fft),
                                   kernel_size=(1, n_fft), stride=(1, hop))
    return first_stft * hop - n_fft // 2, out.reshape(-1)
