"""How a render sounds and plays, measured against a reference render of the same notes: plain numpy functions.

Used by the sound benchmarks (`bench/realism.py`, `bench/playing.py`) and meant for `python -m engine evaluate`.
Conventions: audio is a mono float array (1.0 = full scale); times are seconds from the start of the audio; levels
are dB relative to full scale RMS (a full-scale sine reads -3.01 dB); a level curve has one value per hop (default
10 ms), value i is the RMS of a window (default 20 ms) centred on time i * hop, zero outside the audio.

Sound (timbre):
- `log_mel` / `timbre_distance`: mean L1 distance in dB between level-normalised log-mel frames, frame by frame on
  the same time grid, over the frames where the reference is within 40 dB of its loudest frame.
- `band_energy_db`: share of the energy above a frequency, in dB of the total.
Playing (level over time, per note; `onsets`/`offsets` are the notes' times in seconds, in order, non-overlapping):
- `level_curve`, `note_attacks`, `legato_dips`, `within_note_std`, `sustain_level`;
- `loudness_lufs`: integrated loudness (ITU-R BS.1770 through pyloudnorm).
"""
from __future__ import annotations

import numpy as np

HOP_SECONDS = 0.01
WINDOW_SECONDS = 0.02
FLOOR_DB = -120.0
N_MELS = 64
MEL_FMIN = 40.0
MEL_FMAX_RATIO = 0.9  # of Nyquist
MEL_RANGE_DB = 80.0  # log-mel values more than this below the signal's largest one are clamped there
FRAME_RANGE_DB = 40.0  # timbre frames count where the reference is within this of its loudest frame
ATTACK_DROP_DB = 6.0
JOIN_MAX_GAP = 0.03
JOIN_HALF_WINDOW = 0.05
MIDDLE = 0.6
MIN_STD_SECONDS = 0.4


# ---------------------------------------------------------------- levels

def level_curve(audio: np.ndarray, sample_rate: int, hop: float = HOP_SECONDS, window: float = WINDOW_SECONDS,
                floor_db: float = FLOOR_DB) -> np.ndarray:
    """Short-window RMS level in dB re full scale: (n_frames,), frame i centred at i * hop seconds.

    n_frames = floor(len(audio) / hop_samples) + 1. The window is `window` seconds (rounded to samples), zero outside
    the audio (so the first frame of a sound that starts at once reads about -3 dB below its level). Silence reads
    `floor_db`.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    hop_n = max(1, int(round(hop * sample_rate)))
    win_n = max(1, int(round(window * sample_rate)))
    power = np.concatenate([[0.0], np.cumsum(x * x)])
    centres = np.arange(x.shape[0] // hop_n + 1) * hop_n
    lo = np.clip(centres - win_n // 2, 0, x.shape[0])
    hi = np.clip(centres - win_n // 2 + win_n, 0, x.shape[0])
    mean_square = np.maximum(power[hi] - power[lo], 0.0) / win_n
    return np.maximum(10.0 * np.log10(np.maximum(mean_square, 1e-30)), floor_db)


def _frames_between(start: float, stop: float, n_frames: int, hop: float) -> np.ndarray:
    """Indices of the frames whose centre time t satisfies start <= t < stop (clipped to the curve)."""
    first = max(0, int(np.ceil(start / hop - 1e-9)))
    last = min(n_frames, int(np.ceil(stop / hop - 1e-9)))
    return np.arange(first, max(first, last))


def _middle_frames(onset: float, offset: float, n_frames: int, hop: float, middle: float) -> np.ndarray:
    margin = (1.0 - middle) / 2.0 * (offset - onset)
    frames = _frames_between(onset + margin, offset - margin, n_frames, hop)
    return frames if frames.size else _frames_between(onset, offset, n_frames, hop)


def sustain_level(levels: np.ndarray, onset: float, offset: float, hop: float = HOP_SECONDS,
                  middle: float = MIDDLE) -> float:
    """A note's sustain level (dB): the median level over the middle `middle` fraction of the note (all of its frames
    when that holds none); NaN when the note has no frame."""
    frames = _middle_frames(onset, offset, levels.shape[0], hop, middle)
    return float(np.median(levels[frames])) if frames.size else float("nan")


def note_attacks(levels: np.ndarray, onsets, offsets, hop: float = HOP_SECONDS,
                 drop_db: float = ATTACK_DROP_DB) -> np.ndarray:
    """Attack time per note, seconds: (n_notes,). From the onset to the first time the level reaches the note's
    maximum (over frames onset <= t < offset) minus `drop_db`, linearly interpolated between frames; 0 when the
    first frame already reaches it; NaN for a note with no frame."""
    levels = np.asarray(levels, dtype=np.float64)
    out = np.full(len(onsets), np.nan)
    for i, (onset, offset) in enumerate(zip(onsets, offsets)):
        frames = _frames_between(onset, offset, levels.shape[0], hop)
        if not frames.size:
            continue
        note = levels[frames]
        threshold = note.max() - drop_db
        k = int(np.argmax(note >= threshold))
        if k == 0:
            # crossing between the frame before the onset and the first frame, if the level rose there
            before = levels[frames[0] - 1] if frames[0] > 0 else -np.inf
            t0 = frames[0] * hop
            if before < threshold < note[0] and np.isfinite(before):
                t = t0 - hop + (threshold - before) / (note[0] - before) * hop
            else:
                t = onset
            out[i] = max(0.0, t - onset)
        else:
            lo, hi = note[k - 1], note[k]
            t = (frames[k - 1] + (threshold - lo) / (hi - lo)) * hop
            out[i] = max(0.0, t - onset)
    return out


def legato_joins(onsets, offsets, max_gap: float = JOIN_MAX_GAP) -> np.ndarray:
    """Indices i where note i and note i + 1 touch (0 <= onset[i+1] - offset[i] < max_gap): (n_joins,) int."""
    onsets, offsets = np.asarray(onsets, dtype=float), np.asarray(offsets, dtype=float)
    gaps = onsets[1:] - offsets[:-1]
    return np.nonzero((gaps >= -1e-9) & (gaps < max_gap))[0]


def legato_dips(levels: np.ndarray, onsets, offsets, hop: float = HOP_SECONDS, max_gap: float = JOIN_MAX_GAP,
                half_window: float = JOIN_HALF_WINDOW, middle: float = MIDDLE) -> np.ndarray:
    """Level dip where consecutive notes touch, dB: (n_joins,) in `legato_joins` order. Dip = the lower of the two
    notes' sustain levels (`sustain_level`) minus the minimum level within +-`half_window` s of the join (the middle
    of the gap), the window kept inside the two notes. Positive: the level sags at the join. NaN if undefined."""
    levels = np.asarray(levels, dtype=np.float64)
    onsets, offsets = np.asarray(onsets, dtype=float), np.asarray(offsets, dtype=float)
    joins = legato_joins(onsets, offsets, max_gap)
    out = np.full(joins.shape[0], np.nan)
    for j, i in enumerate(joins):
        t = 0.5 * (offsets[i] + onsets[i + 1])
        frames = _frames_between(max(onsets[i], t - half_window), min(offsets[i + 1], t + half_window) + 1e-9,
                                 levels.shape[0], hop)
        sustain = min(sustain_level(levels, onsets[i], offsets[i], hop, middle),
                      sustain_level(levels, onsets[i + 1], offsets[i + 1], hop, middle))
        if frames.size and np.isfinite(sustain):
            out[j] = sustain - float(levels[frames].min())
    return out


def within_note_std(levels: np.ndarray, onsets, offsets, hop: float = HOP_SECONDS,
                    min_duration: float = MIN_STD_SECONDS, middle: float = MIDDLE) -> np.ndarray:
    """Standard deviation of the level (dB) over the middle `middle` fraction of each note lasting at least
    `min_duration` s: (n_long_notes,), in note order."""
    levels = np.asarray(levels, dtype=np.float64)
    out = []
    for onset, offset in zip(onsets, offsets):
        if offset - onset < min_duration:
            continue
        frames = _middle_frames(onset, offset, levels.shape[0], hop, middle)
        if frames.size >= 2:
            out.append(float(np.std(levels[frames])))
    return np.asarray(out)


def loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness, LUFS (ITU-R BS.1770-4 with its gating, via pyloudnorm), of mono audio. A 1 kHz sine
    peaking at -20 dBFS reads about -23 LUFS. Needs at least 0.4 s; -inf for silence."""
    import pyloudnorm

    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if x.shape[0] < int(0.4 * sample_rate) + 1:
        x = np.pad(x, (0, int(0.4 * sample_rate) + 1 - x.shape[0]))
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(x))


# ---------------------------------------------------------------- timbre

def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = N_MELS, fmin: float = MEL_FMIN,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale, peak 1: (n_mels, n_fft // 2 + 1). fmax defaults to 0.9 x Nyquist.
    A filter narrower than the bin spacing still gets the bin nearest its centre."""
    fmax = MEL_FMAX_RATIO * sample_rate / 2 if fmax is None else fmax

    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=float) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=float) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bank = np.maximum(0.0, np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)))
    for m in range(n_mels):
        if not bank[m].any():
            bank[m, int(np.argmin(np.abs(freqs - edges[m + 1])))] = 1.0
    return bank


def _fft_size(sample_rate: int, seconds: float = 0.04) -> int:
    return int(2 ** np.round(np.log2(seconds * sample_rate)))


def mel_power(audio: np.ndarray, sample_rate: int, hop: float = HOP_SECONDS, n_mels: int = N_MELS,
              fmin: float = MEL_FMIN, fmax: float | None = None, n_fft: int | None = None) -> np.ndarray:
    """Mel power spectrogram: (n_frames, n_mels), frame i centred at i * hop s (Hann window of n_fft samples,
    default the power of two nearest 40 ms; zero outside the audio), n_frames as in `level_curve`."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    n_fft = n_fft or _fft_size(sample_rate)
    hop_n = max(1, int(round(hop * sample_rate)))
    n_frames = x.shape[0] // hop_n + 1
    padded = np.pad(x, (n_fft // 2, n_fft // 2 + hop_n))
    bank = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    window = np.hanning(n_fft + 1)[:-1]
    out = np.empty((n_frames, n_mels))
    block = 512
    for start in range(0, n_frames, block):
        idx = np.arange(start, min(n_frames, start + block))[:, None] * hop_n + np.arange(n_fft)[None, :]
        spectrum = np.fft.rfft(padded[idx] * window, axis=1)
        out[start:start + idx.shape[0]] = (spectrum.real ** 2 + spectrum.imag ** 2) @ bank.T
    return out


def log_mel(audio: np.ndarray, sample_rate: int, range_db: float = MEL_RANGE_DB, **kwargs) -> np.ndarray:
    """Log-mel spectrogram in dB: (n_frames, n_mels); values more than `range_db` below the largest are clamped to
    it (so empty bands count as `range_db` down, whatever the signal's scale). kwargs go to `mel_power`."""
    db = 10.0 * np.log10(np.maximum(mel_power(audio, sample_rate, **kwargs), 1e-30))
    return np.maximum(db, db.max() - range_db)


def timbre_distance(audio: np.ndarray, reference: np.ndarray, sample_rate: int,
                    frame_range_db: float = FRAME_RANGE_DB, range_db: float = MEL_RANGE_DB,
                    return_frames: bool = False, **kwargs):
    """Mean L1 distance (dB per band) between level-normalised log-mel frames of `audio` and `reference`.

    Both are zero-padded to the longer length and framed on the same time grid (`mel_power`: 64 HTK-mel bands from
    40 Hz to 0.9 x Nyquist, 10 ms hop). Each frame's log-mel (`log_mel`) has its own mean over bands subtracted, so
    only the spectral shape counts, not the level; the distance is the mean over bands of |difference|, averaged over
    the frames where the reference's total mel power is within `frame_range_db` of its loudest frame. 0 for a
    signal against itself or a scaled copy. With return_frames, also returns the per-frame distances and the frame
    indices used.
    """
    a = np.asarray(audio, dtype=np.float64).reshape(-1)
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    n = max(a.shape[0], r.shape[0])
    a, r = np.pad(a, (0, n - a.shape[0])), np.pad(r, (0, n - r.shape[0]))
    ref_power = mel_power(r, sample_rate, **kwargs)
    ref_db = 10.0 * np.log10(np.maximum(ref_power, 1e-30))
    ref_db = np.maximum(ref_db, ref_db.max() - range_db)
    out_db = log_mel(a, sample_rate, range_db=range_db, **kwargs)
    frame_db = 10.0 * np.log10(np.maximum(ref_power.sum(axis=1), 1e-30))
    used = np.nonzero(frame_db >= frame_db.max() - frame_range_db)[0]
    norm_a = out_db[used] - out_db[used].mean(axis=1, keepdims=True)
    norm_r = ref_db[used] - ref_db[used].mean(axis=1, keepdims=True)
    per_frame = np.abs(norm_a - norm_r).mean(axis=1)
    distance = float(per_frame.mean()) if per_frame.size else float("nan")
    return (distance, per_frame, used) if return_frames else distance


def band_energy_db(audio: np.ndarray, sample_rate: int, above_hz: float = 8000.0, floor_db: float = -150.0) -> float:
    """Energy at frequencies >= `above_hz` in dB of the total energy: Welch power spectrum (Hann windows of the
    power of two nearest 85 ms, half overlap, so the ends of the signal leak nothing); `floor_db` when silent."""
    from scipy.signal import welch

    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    nperseg = min(x.shape[0], _fft_size(sample_rate, 0.085))
    if nperseg < 2:
        return floor_db
    freqs, power = welch(x, sample_rate, window="hann", nperseg=nperseg, detrend=False)
    total = power.sum()
    if total <= 0:
        return floor_db
    return float(max(floor_db, 10.0 * np.log10(max(power[freqs >= above_hz].sum() / total, 1e-300))))
