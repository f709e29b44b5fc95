"""DDSP processors: each turns network outputs into synth controls (`get_controls`) and controls into audio
(`get_signal`), in the style of magenta/ddsp. `synthesize` renders one voice's `SynthParams` at any sample rate.

Signals are made block by block on a grid fixed in absolute time (harmonics: `HARMONIC_BLOCK_FRAMES` frames; noise:
`NOISE_BLOCK_STFT` STFT frames, each block seeded from (seed, block)), so memory stays flat for long clips and any
block can be re-made alone with identical samples.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from daw_bridge.protocol import check_sample_rate

from . import core
from .params import FRAME_RATE, SynthParams, normalize_harmonics

HARMONIC_BLOCK_FRAMES = 50
NOISE_BLOCK_STFT = 256


class Harmonic:
    """Harmonic oscillator bank; partials at or above min(max_hz, Nyquist) are never rendered."""

    def get_controls(self, amplitude: torch.Tensor, harmonics: torch.Tensor, f0: torch.Tensor, max_hz: float):
        """Network outputs -> (amplitude (..., frames) linear, harmonic distribution (..., frames, K))."""
        return core.exp_sigmoid(amplitude), normalize_harmonics(core.exp_sigmoid(harmonics), f0, max_hz)

    def get_signal(self, params: SynthParams, sample_rate: int, start: int, stop: int,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """Samples [start, stop) of the harmonic part, added into `out` when given -> (stop - start,) float32.
        `params` may be a window of the voice that holds `harmonic_frames(sample_rate, start, stop)`."""
        out = torch.zeros(stop - start) if out is None else out
        limit = min(params.max_hz, sample_rate / 2.0)
        block = block_frames(sample_rate)
        first, last = _harmonic_blocks(sample_rate, start, stop)
        base = params.first_frame  # tensors index frames of the voice minus base
        _check_window(params, max(first - 1, 0), last + 2)
        f0 = _pad_frames(params.f0, last + 2 - base)
        phases = core.frame_phases(f0, FRAME_RATE, _pad_frames(params.amplitude, last + 2 - base), params.start_phase)
        workspace = torch.empty(block * sample_rate // FRAME_RATE * params.harmonics.shape[1])
        for frame in range(first, last, block):
            # Amplitudes of this block's frames (+1 for interpolation, +1 neighbour for the audibility mask).
            lo, hi = max(frame - 1, 0), frame + block + 2
            amps = _pad_frames(params.amplitude[lo - base:hi - base, None] * params.harmonics[lo - base:hi - base],
                               hi - lo)
            amps = amps * core.audible_harmonics(f0[lo - base:hi - base], amps.shape[1], limit)
            local_f0 = f0[frame - base:frame - base + block + 1]
            samples = core.harmonic_block(local_f0, amps[frame - lo:], phases[frame - base:frame - base + block + 1],
                                          0, block, sample_rate, FRAME_RATE, workspace)
            b0 = frame * sample_rate // FRAME_RATE
            s0, s1 = max(b0, start), min(b0 + samples.shape[0], stop)
            if s1 > s0:
                out[s0 - start:s1 - start] += samples[s0 - b0:s1 - b0]
        return out


def _harmonic_blocks(sample_rate: int, start: int, stop: int) -> tuple[int, int]:
    """First frame of the first harmonic block and the end of the last one that samples [start, stop) fall in."""
    block = block_frames(sample_rate)
    first = start * FRAME_RATE // sample_rate // block * block
    last = -(-stop * FRAME_RATE // sample_rate) // block * block + block
    return first, last


def _check_window(params: SynthParams, lo: int, hi: int) -> None:
    """A window of a voice must hold the voice's frames [lo, hi) (those past the voice's end excepted)."""
    hi = min(hi, params.total_frames)
    if params.first_frame > lo or params.first_frame + params.n_frames < hi:
        raise ValueError(f"parameters of frames {params.first_frame}..{params.first_frame + params.n_frames} "
                         f"cannot render what needs frames {lo}..{hi}")


def frames_needed(sample_rate: int, start: int, stop: int, voice_frames: int) -> tuple[int, int]:
    """Frames [lo, hi) of a voice of `voice_frames` frames that its samples [start, stop) are made from: the
    window of parameters `synthesize` needs for them (engine.stream holds no more)."""
    first, last = _harmonic_blocks(sample_rate, start, stop)
    lo, hi = max(first - 1, 0), min(last + 2, voice_frames)
    for _, f0, f1 in _noise_blocks(sample_rate, start, stop, voice_frames):
        lo, hi = min(lo, f0), max(hi, f1)
    return lo, hi


def block_frames(sample_rate: int) -> int:
    """Harmonic block length in frames: about HARMONIC_BLOCK_FRAMES, a whole number of samples long."""
    period = core.frames_per_period(sample_rate, FRAME_RATE)
    return max(1, HARMONIC_BLOCK_FRAMES // period) * period


def _pad_frames(x: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Extend (frames, ...) to n_frames by repeating the last frame (zeros if empty), or cut to n_frames."""
    if x.shape[0] >= n_frames:
        return x[:n_frames]
    if x.shape[0] == 0:
        return torch.zeros(n_frames, *x.shape[1:])
    return torch.cat([x, x[-1:].expand(n_frames - x.shape[0], *x.shape[1:])])


class FilteredNoise:
    """Noise shaped by band magnitudes, synthesised in the STFT domain."""

    def get_controls(self, magnitudes: torch.Tensor) -> torch.Tensor:
        """Network outputs -> linear band magnitudes, biased quiet as in DDSP."""
        return core.exp_sigmoid(magnitudes - 5.0)

    def get_signal(self, params: SynthParams, sample_rate: int, start: int, stop: int, seed: int,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """Samples [start, stop) of the noise part, added into `out` when given -> (stop - start,) float32; blocks are
        seeded from (seed, block). `params` may be a window of the voice (engine.dsp.frames_needed)."""
        n_fft = core.noise_fft_size(sample_rate)
        out = torch.zeros(stop - start) if out is None else out
        base, total = params.first_frame, params.total_frames
        for block, f0, f1 in _noise_blocks(sample_rate, start, stop, total):
            _check_window(params, f0, f1)
            if f1 <= f0 or bool((params.noise[f0 - base:f1 - base].amax(-1) < 1e-7).all()):
                continue  # every band below 1e-7 over the frames this block reaches
            j0 = block * NOISE_BLOCK_STFT
            j1 = min(j0 + NOISE_BLOCK_STFT, _stft_frames(sample_rate, total) + 1)
            generator = torch.Generator().manual_seed(_block_seed(seed, block))
            offset, grains = core.noise_block(params.noise, params.max_hz, sample_rate, FRAME_RATE, j0, j1, n_fft,
                                              generator, base, total)
            lo, hi = max(offset, start), min(offset + grains.shape[0], stop)
            if hi > lo:
                out[lo - start:hi - start] += grains[lo - offset:hi - offset]
        return out


def _stft_frames(sample_rate: int, voice_frames: int) -> int:
    hop = core.noise_fft_size(sample_rate) // core.NOISE_OVERLAP
    return math.ceil(voice_frames / FRAME_RATE * sample_rate / hop) + 1


def _noise_blocks(sample_rate: int, start: int, stop: int, voice_frames: int):
    """(block, first frame, stop frame) of each noise block that reaches samples [start, stop) of a voice of
    `voice_frames` frames and has STFT frames: the block is made from those frames only."""
    n_fft = core.noise_fft_size(sample_rate)
    hop = n_fft // core.NOISE_OVERLAP
    block_len = NOISE_BLOCK_STFT * hop
    total_stft = _stft_frames(sample_rate, voice_frames)
    first_block = max((start - n_fft) // block_len, 0)
    last_block = min((stop + n_fft) // block_len, total_stft // NOISE_BLOCK_STFT)
    for block in range(first_block, last_block + 1):
        j0, j1 = block * NOISE_BLOCK_STFT, min((block + 1) * NOISE_BLOCK_STFT, total_stft + 1)
        if j1 > j0:
            f0 = max(int((j0 * hop - n_fft) * FRAME_RATE / sample_rate) - 1, 0)
            f1 = min(int((j1 * hop + n_fft) * FRAME_RATE / sample_rate) + 2, voice_frames)
            yield block, f0, max(f0, f1)


def _block_seed(seed: int, block: int) -> int:
    return (seed * 1_000_003 + block * 7919 + 17) % (2 ** 62)


class Reverb:
    """The preset's output stage: convolution with an impulse response (mono, at `ir_rate`), resampled to the output
    rate; dry + wet, times the preset's output gain (linear; its `output_gain_db` calibrates its level)."""

    def __init__(self, impulse_response: np.ndarray, ir_rate: int, wet: float = 0.25, gain: float = 1.0):
        self.impulse_response = np.asarray(impulse_response, dtype=np.float32)
        self.ir_rate = ir_rate
        self.wet = wet
        self.gain = gain
        self._resampled: dict[int, np.ndarray] = {}

    def ir_at(self, sample_rate: int) -> np.ndarray:
        if sample_rate not in self._resampled:
            import soxr

            ir = self.impulse_response
            if sample_rate != self.ir_rate:
                # Same continuous-time response at any rate: samples are 1/rate apart, so scale by the rate ratio.
                ir = (soxr.resample(ir, self.ir_rate, sample_rate) * (self.ir_rate / sample_rate)).astype(np.float32)
            self._resampled[sample_rate] = ir
        return self._resampled[sample_rate]

    @property
    def tail_seconds(self) -> float:
        return len(self.impulse_response) / self.ir_rate

    def get_signal(self, dry: np.ndarray, sample_rate: int) -> np.ndarray:
        """dry: (n,) -> (n + ir_length - 1,) dry plus reverberated signal, times the gain: `stream` fed the whole
        signal, so a signal streamed block by block gets the same samples."""
        stream = self.stream(sample_rate)
        pieces = [stream.push(dry[lo:lo + REVERB_BLOCK]) for lo in range(0, dry.shape[0], REVERB_BLOCK)]
        return np.concatenate(pieces + [stream.tail()])

    def stream(self, sample_rate: int) -> "ReverbStream":
        return ReverbStream(self, sample_rate)


REVERB_BLOCK = 2 ** 17  # input samples per convolution block, on a grid from the signal's first sample


class ReverbStream:
    """A Reverb applied to a signal that arrives REVERB_BLOCK samples at a time: each block is convolved with the
    impulse response by FFT (from its first non-zero sample, so FFT round-off puts nothing into silence before a
    sound) and overlap-added; `push` returns the finished output samples of the block it was given. Memory: one
    block and one impulse response, whatever the signal's length."""

    def __init__(self, reverb: Reverb, sample_rate: int):
        self.reverb = reverb
        ir = reverb.ir_at(sample_rate)
        self.n_fft = 2 ** math.ceil(math.log2(REVERB_BLOCK + ir.shape[0] - 1))
        self.ir_spectrum = np.fft.rfft(ir.astype(np.float64), self.n_fft)
        self.pending = np.zeros(REVERB_BLOCK + ir.shape[0] - 1, dtype=np.float32)  # wet sums from the next sample on
        self.ended = False

    def push(self, dry: np.ndarray) -> np.ndarray:
        """The next (n,) samples of the signal, n = REVERB_BLOCK (less only for the last block) -> (n,) output."""
        if self.ended or dry.shape[0] > REVERB_BLOCK:
            raise ValueError("a reverb stream takes REVERB_BLOCK samples at a time, fewer only at the end")
        n = dry.shape[0]
        self.ended = n < REVERB_BLOCK
        sounding = np.flatnonzero(dry)
        if sounding.size and self.reverb.wet > 0:
            first = int(sounding[0])
            length = n - first + self.pending.shape[0] - REVERB_BLOCK
            wet = np.fft.irfft(np.fft.rfft(dry[first:].astype(np.float64), self.n_fft) * self.ir_spectrum,
                               self.n_fft)[:length]
            self.pending[first:first + length] += wet.astype(np.float32) * np.float32(self.reverb.wet)
        out = self.pending[:n] + dry * np.float32(1.0 - self.reverb.wet)
        self.pending = np.concatenate([self.pending[n:], np.zeros(n, dtype=np.float32)])
        return self._gained(out)

    def tail(self) -> np.ndarray:
        """The ir_length - 1 samples after the signal's end (call once, after the last block)."""
        return self._gained(self.pending[:self.pending.shape[0] - REVERB_BLOCK].copy())

    def _gained(self, out: np.ndarray) -> np.ndarray:
        if self.reverb.gain != 1.0:
            out *= np.float32(self.reverb.gain)
        return out


def synthesize(params: SynthParams, sample_rate: int, n_samples: int, seed: int = 0,
               start: int = 0, threads: int = 1) -> torch.Tensor:
    """Dry harmonic-plus-noise audio of one voice, samples [start, start + n_samples) -> (n_samples,) float32.

    Any range is made exactly as the whole makes it, so `threads` > 1 makes consecutive ranges side by side (one
    torch thread each) with the same result."""
    check_sample_rate(sample_rate)
    out = torch.zeros(n_samples)
    step = max(sample_rate, -(-n_samples // max(1, threads)))  # ranges of at least a second
    ranges = [(lo, min(lo + step, n_samples)) for lo in range(0, n_samples, step)]
    if len(ranges) <= 1:
        _synthesize_range(params, sample_rate, seed, start, out)
        return out
    with thread_pool(len(ranges)) as pool:
        list(pool.map(lambda r: _synthesize_range(params, sample_rate, seed, start + r[0], out[r[0]:r[1]]), ranges))
    return out


def thread_pool(threads: int) -> ThreadPoolExecutor:
    """A pool whose threads run torch with one thread each, set before their first torch call (torch keeps the
    thread count per thread: a fresh thread would otherwise use all cores and differ in the last bits)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="render", initializer=torch.set_num_threads,
                              initargs=(1,))


def _synthesize_range(params: SynthParams, sample_rate: int, seed: int, start: int, out: torch.Tensor) -> None:
    """Add samples [start, start + len(out)) of the voice into `out`."""
    with torch.no_grad():
        Harmonic().get_signal(params, sample_rate, start, start + out.shape[0], out)
        FilteredNoise().get_signal(params, sample_rate, start, start + out.shape[0], seed, out)
