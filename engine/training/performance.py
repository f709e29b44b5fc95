"""Real music performed with human-like expression, as MIDI for FluidSynth (the dataset builder's player).

A piece is one voice of a Bach chorale from music21's bundled corpus, transposed into the instrument's range
(`place_in_range`: whole octaves, a few semitones only if no octave fits), then performed (`perform`):
- tempo 56-100 bpm per piece, +-8 % per phrase (phrases end at fermatas), fermatas held 1.3-2x, breaths after them;
- articulation per phrase (legato / normal / detached), varied per note;
- level: a dynamic per phrase (ppp..ff) with an arc over the phrase and accents, carried by velocity + CC7;
- tone colour per phrase: FluidSynth's filter (dark low-pass, the soundfont's own, or a bright resonance), set once
  per channel at time 0: each phrase has its own pair of MIDI channels and its notes alternate between the two, so
  no filter, CC7, CC11 or bend change ever lands on a voice that still sounds (FluidSynth clicks on filter changes);
- a CC11 envelope per note, piecewise linear in dB with its peak anywhere in the note (steady, swell, decay,
  crescendo, or a dramatic swell from near silence);
- pitch-bend vibrato per note (none on about a quarter of the notes, else 0.02-0.4 semitone extent at 4.5-7 Hz,
  delayed and faded in) and a small per-note intonation offset.
Everything is drawn from one numpy Generator, so a seed gives the same performance. `Performance.f0` is the pitch
the MIDI asks for at 250 frames/s (note pitch + bend), held through rests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..notes import Note, NoteError
from ..params import FRAME_RATE

TICKS_PER_SECOND = 2000  # 1000 ticks per beat at 120 bpm: 0.5 ms resolution
BEND_RANGE_SEMITONES = 2.0
LEAD_IN_SECONDS = 0.25
TAIL_SECONDS = 0.6
MIN_NOTE_SECONDS = 0.06
GEN_FILTER_FC, GEN_FILTER_Q = 8, 9  # SoundFont generator numbers
DEFAULT_FILTER_FC_CENTS = 13500.0  # SoundFont default initialFilterFc (filter open)
PHRASE_CHANNELS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 10), (11, 12), (13, 14))


@dataclass(frozen=True)
class Instrument:
    name: str
    program: int  # General MIDI program (0-based)
    low: int  # lowest MIDI pitch played
    high: int  # highest MIDI pitch played


INSTRUMENTS = {i.name: i for i in [
    Instrument("violin", 40, 55, 91),
    Instrument("viola", 41, 48, 84),
    Instrument("cello", 42, 36, 72),
    Instrument("contrabass", 43, 28, 60),
    Instrument("trumpet", 56, 54, 82),
    Instrument("trombone", 57, 40, 72),
    Instrument("tuba", 58, 29, 60),
    Instrument("horn", 60, 41, 77),
    Instrument("soprano_sax", 64, 56, 87),
    Instrument("alto_sax", 65, 49, 80),
    Instrument("oboe", 68, 58, 89),
    Instrument("bassoon", 70, 34, 72),
    Instrument("clarinet", 71, 50, 89),
    Instrument("flute", 73, 60, 96),
]}


def get_instrument(name: str) -> Instrument:
    try:
        return INSTRUMENTS[name]
    except KeyError:
        raise ValueError(f"unknown instrument {name!r} (known: {', '.join(sorted(INSTRUMENTS))})") from None


@dataclass(frozen=True)
class MelodyNote:
    pitch: int
    start: float  # quarter notes from the start of the piece
    length: float  # quarter notes
    fermata: bool = False


def chorale_voices(score) -> dict[str, list[MelodyNote]]:
    """A music21 chorale score -> {"soprano"|"alto"|"tenor"|"bass": notes (ties merged, chords -> top note)}.
    Parts with other names are ignored; raises NoteError unless all four voices are there."""
    voices = {}
    for part in score.parts:
        name = (part.partName or "").strip().lower()
        if name not in ("soprano", "alto", "tenor", "bass") or name in voices:
            continue
        notes = []
        for element in part.stripTies().flatten().notes:
            pitch = max(p.midi for p in element.pitches)
            length = float(element.quarterLength)
            if length <= 0:  # grace notes
                continue
            fermata = any(e.name == "fermata" for e in element.expressions)
            notes.append(MelodyNote(pitch, float(element.offset), length, fermata))
        if notes:
            voices[name] = notes
    if len(voices) != 4:
        raise NoteError(f"not a four-voice chorale (voices found: {sorted(voices)})")
    return voices


def place_in_range(pitches: list[int], low: int, high: int, rng: np.random.Generator) -> int:
    """Transposition (semitones) that puts every pitch in [low, high]: a random whole-octave shift among those that
    fit, else the fitting shift nearest an octave (a few semitones off), else the octave shift that leaves the
    fewest pitches outside (the caller folds those by octaves)."""
    lo, hi = min(pitches), max(pitches)
    octaves = [12 * k for k in range(-6, 7) if low <= lo + 12 * k and hi + 12 * k <= high]
    if octaves:
        return int(rng.choice(octaves))
    for offset in (1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6):
        fits = [12 * k + offset for k in range(-6, 7) if low <= lo + 12 * k + offset and hi + 12 * k + offset <= high]
        if fits:
            return int(rng.choice(fits))
    return min((12 * k for k in range(-6, 7)), key=lambda s: sum(not low <= p + s <= high for p in pitches))


def fold_into_range(pitch: int, low: int, high: int) -> int:
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


@dataclass
class Performance:
    notes: list[Note]  # monophonic, non-overlapping, times in seconds
    f0: np.ndarray  # (F,) Hz at FRAME_RATE, frame 0 at time 0: the MIDI pitch + bend, held through rests
    bend: np.ndarray  # (F,) semitones of pitch bend asked for at each frame (held through rests)
    duration: float  # seconds of audio to render (last offset + release tail)
    events: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (tick, order, raw MIDI bytes)
    bend_spans: list[tuple[float, int, int, int]] = field(default_factory=list)  # onset s, first frame, frames, channel
    channel_filters: dict[int, tuple[float, float]] = field(default_factory=dict)  # channel -> (Fc cents, Q cB)
    transpose: int = 0

    def write_midi(self, path: str | Path, program: int, bend_correction: np.ndarray | None = None) -> None:
        """A type-0 MIDI file at 120 bpm, 1000 ticks per beat (0.5 ms a tick).

        Every channel is set up at time 0 (program, bend range, its filter); nothing about a channel's filter
        changes while notes sound (a filter change under a sounding voice clicks in FluidSynth).
        bend_correction: (F,) semitones added to the bend while each note sounds (to cancel a soundfont's own
        pitch wobble); the notes and `f0` stay what the performance asks for."""
        import mido

        bend = self.bend if bend_correction is None else self.bend + bend_correction
        events = list(self.events)
        for onset, first, n, channel in self.bend_spans:
            values = _bend_values(bend[first:first + n])
            events += _curve_events(onset, n, values, lambda v, c=channel: [0xE0 | c, int(v) & 0x7F, int(v) >> 7], 2)
        midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_SECOND // 2)
        track = mido.MidiTrack()
        midi.tracks.append(track)
        track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
        for channel, (cutoff_cents, resonance_cb) in sorted(self.channel_filters.items()):
            cc = 0xB0 | channel
            setup = [[0xC0 | channel, program], [cc, 101, 0], [cc, 100, 0], [cc, 6, int(BEND_RANGE_SEMITONES)],
                     [cc, 38, 0], [cc, 101, 127], [cc, 100, 127], [cc, 7, 127], [cc, 11, 127], [0xE0 | channel, 0, 64]]
            setup += _nrpn(channel, GEN_FILTER_FC, cutoff_cents / 2.0) + _nrpn(channel, GEN_FILTER_Q, resonance_cb)
            for raw in setup:
                track.append(mido.Message.from_bytes(raw, time=0))
        last = 0
        for tick, _, raw in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(mido.Message.from_bytes(raw, time=tick - last))
            last = tick
        end = int(round(self.duration * TICKS_PER_SECOND))
        track.append(mido.MetaMessage("end_of_track", time=max(0, end - last)))
        midi.save(str(path))


def _ticks(seconds: float) -> int:
    return int(round(seconds * TICKS_PER_SECOND))


def _timeline(melody: list[MelodyNote], rng: np.random.Generator, max_seconds: float) -> list[dict]:
    """Onset/offset in seconds for each note: tempo, phrase rubato, fermatas, breaths, articulation; cut at a
    phrase end (or a note end) before max_seconds."""
    seconds_per_quarter = 60.0 / rng.uniform(56.0, 100.0)
    time = LEAD_IN_SECONDS
    phrase_rate = seconds_per_quarter * rng.uniform(0.92, 1.08)
    style = rng.choice(["legato", "normal", "detached"], p=[0.4, 0.4, 0.2])
    phrase = 0
    timed = []
    for index, note in enumerate(melody):
        gap_ql = note.start - (melody[index - 1].start + melody[index - 1].length) if index else 0.0
        time += max(0.0, gap_ql) * phrase_rate
        ioi = note.length * phrase_rate * (rng.uniform(1.3, 2.0) if note.fermata else 1.0)
        breath = rng.uniform(0.1, 0.6) if note.fermata and rng.random() < 0.7 else 0.0
        if style == "legato":
            ratio = 1.0 if rng.random() < 0.85 else rng.uniform(0.85, 0.95)
        elif style == "normal":
            ratio = rng.uniform(0.8, 0.95)
        else:
            ratio = rng.uniform(0.35, 0.65)
        length = max(MIN_NOTE_SECONDS, ioi * ratio)
        timed.append({"pitch": note.pitch, "onset": time, "offset": time + length, "fermata": note.fermata,
                      "phrase": phrase})
        time += ioi + breath
        if note.fermata:
            phrase += 1
            phrase_rate = seconds_per_quarter * rng.uniform(0.92, 1.08)
            style = rng.choice(["legato", "normal", "detached"], p=[0.4, 0.4, 0.2])
    return _cut_at_phrase_end(timed, max_seconds)


def _cut_at_phrase_end(timed: list[dict], max_seconds: float) -> list[dict]:
    """The timed notes up to the last phrase end (fermata) before max_seconds that keeps at least 60 % of it, else
    up to the last note that fits (at least one note)."""
    fitting = [i for i, n in enumerate(timed) if n["offset"] <= max_seconds]
    if not fitting:
        return timed[:1]
    phrase_ends = [i for i in fitting if timed[i]["fermata"] and timed[i]["offset"] >= 0.6 * max_seconds]
    return timed[:(phrase_ends[-1] if phrase_ends else fitting[-1]) + 1]


def _envelope_db(n_frames: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """CC11 shape of one note in dB (0 at its peak): steady; shaped (piecewise linear: start -D1 -> peak 0 at a
    random position -> end -D2, D up to 30 dB); dramatic (the same from and to near silence, D 30-80 dB); or
    sforzando-piano (peak at the onset, a drop of 15-50 dB within the note, then flat)."""
    kind = rng.choice(["steady", "shaped", "dramatic", "sfp"], p=[0.25, 0.45, 0.15, 0.15])
    if kind in ("dramatic", "sfp") and duration < 0.3:
        kind = "shaped"
    position = np.arange(n_frames) / max(n_frames - 1, 1)
    if kind == "sfp":
        drop_at, drop_len, depth = rng.uniform(0.05, 0.45), rng.uniform(0.03, 0.15), rng.uniform(15, 50)
        return -depth * np.clip((position - drop_at) / drop_len, 0.0, 1.0)
    if kind == "steady":
        d1, d2 = rng.uniform(0, 3, 2)
    elif kind == "shaped":
        d1, d2 = rng.uniform(0, 30, 2)
    else:
        d1, d2 = rng.uniform(30, 80, 2)
    peak = rng.uniform(0.2, 0.8) if kind == "dramatic" else rng.uniform(0.0, 1.0)
    rise = -d1 * (1 - position / peak) if peak > 0 else np.zeros(n_frames)
    fall = -d2 * (position - peak) / (1 - peak) if peak < 1 else np.zeros(n_frames)
    return np.where(position <= peak, rise, fall)


def _vibrato_semitones(n_frames: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Pitch-bend vibrato of one note in semitones: none on ~25 % of notes, else a sine of extent 0.02-0.4
    semitone at 4.5-7 Hz starting after a delay, faded in."""
    if rng.random() < 0.25:
        return np.zeros(n_frames)
    extent = rng.uniform(0.02, 0.4)
    rate = rng.uniform(4.5, 7.0)
    delay = rng.uniform(0.0, 0.3) * duration
    fade = rng.uniform(0.05, 0.3)
    t = np.arange(n_frames) / FRAME_RATE
    gain = np.clip((t - delay) / fade, 0.0, 1.0)
    return extent * gain * np.sin(2 * np.pi * rate * (t - delay) + rng.uniform(-0.3, 0.3))


def _db_to_midi(db) -> np.ndarray:
    """FluidSynth's CC7/CC11/velocity attenuation is 40 log10(value / 127) dB."""
    return np.clip(np.round(127.0 * 10.0 ** (np.asarray(db) / 40.0)), 0, 127).astype(int)


def _timbre(rng: np.random.Generator) -> tuple[float | None, float]:
    """A phrase's tone colour as a FluidSynth filter: (cutoff in harmonics of the phrase's median pitch or None for
    the soundfont's own, resonance in cB). dark 40 %: low-pass at 1.5-10 harmonics; natural 35 %; bright 25 %:
    resonant low-pass at 8-20 harmonics, 8-20 dB."""
    kind = rng.choice(["dark", "natural", "bright"], p=[0.4, 0.35, 0.25])
    if kind == "dark":
        return float(np.exp(rng.uniform(np.log(1.5), np.log(10.0)))), 0.0
    if kind == "bright":
        return float(np.exp(rng.uniform(np.log(8.0), np.log(20.0)))), float(rng.uniform(80.0, 200.0))
    return None, 0.0


def _nrpn(channel: int, generator: int, value: float) -> list[list[int]]:
    """SoundFont 2.01 NRPN (MSB 120): add `value` (in units of the generator's NRPN scale) to a generator."""
    data = int(np.clip(8192 + round(value), 0, 16383))
    cc = 0xB0 | channel
    return [[cc, 99, 120], [cc, 98, generator], [cc, 6, data >> 7], [cc, 38, data & 0x7F]]


def _filter_setting(pitch: float, harmonics: float | None, resonance_cb: float) -> tuple[float, float]:
    """(initialFilterFc offset in cents, initialFilterQ in cB) for a cutoff at `harmonics` x the pitch's
    fundamental (None: no offset). FluidSynth scales their NRPN data by 2 cents and 1 cB."""
    if harmonics is None:
        return 0.0, resonance_cb
    cutoff_hz = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0) * harmonics
    return min(0.0, 1200.0 * math.log2(cutoff_hz / 8.176) - DEFAULT_FILTER_FC_CENTS), resonance_cb


@dataclass
class _Score:
    """A monophonic performance written note by note: the pitch and bend per frame, the MIDI events, the bend spans
    and the notes (shared by the coverage and the musical player)."""
    n_frames: int
    pitch_frames: np.ndarray = field(init=False)
    bend_frames: np.ndarray = field(init=False)
    events: list[tuple[int, int, list[int]]] = field(default_factory=list)
    spans: list[tuple[float, int, int, int]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def __post_init__(self):
        self.pitch_frames, self.bend_frames = np.zeros(self.n_frames), np.zeros(self.n_frames)

    def frames_of(self, item: dict) -> tuple[int, int, float, float, int, int]:
        """A timed note -> (onset tick, offset tick, onset s, offset s, first frame, frames inside [onset, offset))."""
        onset_tick, offset_tick = _ticks(item["onset"]), _ticks(item["offset"])
        onset, offset = onset_tick / TICKS_PER_SECOND, offset_tick / TICKS_PER_SECOND
        first = int(math.ceil(onset * FRAME_RATE))
        frames = max(min(int(math.ceil(offset * FRAME_RATE)), self.n_frames) - first, 1)
        return onset_tick, offset_tick, onset, offset, first, frames

    def add(self, item: dict, pitch: int, channel: int, velocity: int, volume: int, envelope_db: np.ndarray,
            bend: np.ndarray) -> None:
        """Note number len(notes): its pitch and bend (held until the next note), CC7 at the onset tick before the
        note-on, its CC11 envelope and bend per frame while it sounds, note-on and note-off."""
        onset_tick, offset_tick, onset, offset, first, frames = self.frames_of(item)
        start = 0 if not self.notes else first
        self.pitch_frames[start:] = pitch
        self.bend_frames[start:first] = bend[0]
        self.bend_frames[first:first + frames] = bend
        self.bend_frames[first + frames:] = bend[-1]
        self.events.append((onset_tick, 1, [0xB0 | channel, 7, volume]))
        self.events += _curve_events(onset, frames, _db_to_midi(envelope_db),
                                     lambda v: [0xB0 | channel, 11, int(v)], 2)
        self.spans.append((onset, first, frames, channel))
        self.events.append((onset_tick, 3, [0x90 | channel, pitch, velocity]))
        self.events.append((offset_tick, 0, [0x80 | channel, pitch, 0]))
        self.notes.append(Note(pitch=pitch, onset=onset, offset=offset, velocity=velocity, id=str(len(self.notes))))

    def performance(self, duration: float, channel_filters: dict, transpose: int) -> Performance:
        f0 = 440.0 * 2.0 ** ((self.pitch_frames + self.bend_frames - 69.0) / 12.0)
        return Performance(self.notes, f0.astype(np.float32), self.bend_frames, duration, self.events, self.spans,
                           channel_filters, transpose)


def perform(melody: list[MelodyNote], instrument: Instrument, rng: np.random.Generator,
            max_seconds: float = 20.0, transpose: int | None = None) -> Performance:
    """One voice -> an expressive monophonic performance (notes, MIDI events, the f0 the MIDI asks for)."""
    if transpose is None:
        transpose = place_in_range([n.pitch for n in melody], instrument.low, instrument.high, rng)
    timed = _timeline(melody, rng, max_seconds)
    duration = timed[-1]["offset"] + TAIL_SECONDS
    score = _Score(int(math.ceil(duration * FRAME_RATE)) + 1)
    phrases = sorted({n["phrase"] for n in timed})
    phrase_db = {p: rng.uniform(-42.0, 8.0) for p in phrases}  # mean level of a note, dB re full level
    phrase_arc = {p: rng.uniform(-6.0, 10.0) for p in phrases}
    phrase_timbre = {p: _timbre(rng) for p in phrases}
    # Each phrase plays on its own pair of channels (its filter set once at time 0), its notes alternating between
    # the two, so no note's CC7/CC11/bend changes the release of the note before it.
    phrase_pitch = {p: float(np.median([n["pitch"] for n in timed if n["phrase"] == p])) + transpose for p in phrases}
    channel_filters = {}
    for p in phrases:
        setting = _filter_setting(phrase_pitch[p], *phrase_timbre[p])
        for channel in _phrase_channels(p):
            channel_filters.setdefault(channel, setting)
    phrase_len = {p: sum(1 for n in timed if n["phrase"] == p) for p in phrases}
    phrase_pos = 0
    for index, item in enumerate(timed):
        pitch = fold_into_range(item["pitch"] + transpose, instrument.low, instrument.high)
        phrase = item["phrase"]
        phrase_pos = phrase_pos + 1 if index and timed[index - 1]["phrase"] == phrase else 0
        arc = math.sin(math.pi * (phrase_pos + 0.5) / phrase_len[phrase])
        _, _, onset, offset, _, frames = score.frames_of(item)
        envelope = _envelope_db(frames, offset - onset, rng)
        # The note's mean level is the phrase's (with its arc and a little jitter): the peak sits above it.
        mean_db = phrase_db[phrase] + phrase_arc[phrase] * arc + rng.normal(0.0, 2.5)
        level_db = min(0.0, mean_db - float(envelope.mean()))
        velocity_db = float(np.clip(level_db / 2 + rng.normal(0.0, 2.0), -24.0, 0.0))
        velocity = int(max(1, _db_to_midi(velocity_db)))
        volume = int(max(1, _db_to_midi(level_db - velocity_db)))
        bend = _vibrato_semitones(frames, offset - onset, rng) + rng.normal(0.0, 0.04)
        score.add(item, pitch, _phrase_channels(phrase)[phrase_pos % 2], velocity, volume, envelope, bend)
    return score.performance(duration, channel_filters, transpose)


def _phrase_channels(phrase: int) -> tuple[int, int]:
    """The two MIDI channels of a phrase: 7 pairs, skipping the GM drum channel 9; phrases beyond 7 reuse them
    (and their filter) in turn."""
    return PHRASE_CHANNELS[phrase % len(PHRASE_CHANNELS)]


def _bend_values(semitones: np.ndarray) -> np.ndarray:
    return np.clip(np.round(8192 + semitones / BEND_RANGE_SEMITONES * 8192), 0, 16383).astype(int)


def _curve_events(onset: float, n_frames: int, values: np.ndarray, message, order: int) -> list:
    """One event at the onset, then one per frame where the value changes (frame k at onset + k / FRAME_RATE)."""
    events, previous = [], None
    for k, value in enumerate(values):
        if value != previous:
            tick = _ticks(onset) if k == 0 else _ticks(math.ceil(onset * FRAME_RATE + k) / FRAME_RATE)
            events.append((tick, order, message(value)))
            previous = value
    return events


# ---------------------------------------------------------------------------------------------------------------
# Musical performances: what a player would do (the expression generator's prior). Rules and numbers: docs/dataset.md

@dataclass(frozen=True)
class PlayingStyle:
    """How an instrument is played by default: vibrato rate (Hz) and extent (semitones, half the peak-to-peak
    swing) ranges, the fraction of notes long enough for vibrato that get it, and its onset delay (s)."""
    vibrato_rate: tuple[float, float]
    vibrato_extent: tuple[float, float]
    vibrato_share: float
    vibrato_delay: tuple[float, float] = (0.12, 0.3)


PLAYING_STYLES = {
    "violin": PlayingStyle((5.5, 6.5), (0.12, 0.3), 0.9),
    "viola": PlayingStyle((5.0, 6.5), (0.12, 0.3), 0.9),
    "cello": PlayingStyle((5.0, 6.0), (0.1, 0.25), 0.9),
    "contrabass": PlayingStyle((4.5, 5.5), (0.1, 0.2), 0.7),
    "flute": PlayingStyle((4.5, 5.5), (0.04, 0.12), 0.8),
    "oboe": PlayingStyle((4.5, 5.5), (0.04, 0.1), 0.8),
    "bassoon": PlayingStyle((4.5, 5.5), (0.03, 0.08), 0.6),
    "clarinet": PlayingStyle((5.0, 5.5), (0.0, 0.0), 0.0),  # the classical clarinet plays without vibrato
    "soprano_sax": PlayingStyle((5.0, 6.0), (0.08, 0.2), 0.8),
    "alto_sax": PlayingStyle((5.0, 6.0), (0.08, 0.2), 0.8),
}
DEFAULT_STYLE = PlayingStyle((4.5, 5.5), (0.0, 0.05), 0.3)
DYNAMICS_DB = {"p": -14.0, "mp": -11.0, "mf": -8.0, "f": -4.0}  # velocity 64, 76, 80, 101 (40 log10(v/127) dB)
PHRASE_ARCH_DB = (6.0, 10.0)  # how much louder a phrase's middle is than its ends (per piece)
LEGATO_REPEAT_GAP = 0.04  # s: a repeated pitch is re-articulated
LEAP_SEMITONES = 7  # leap articulation: a micropause before leaps of a fifth or more (half of them)


def _musical_timeline(melody: list[MelodyNote], rng: np.random.Generator, max_seconds: float) -> list[dict]:
    """Onset/offset per note with the KTH timing rules: one tempo per piece (60-96 bpm); phrase arch in tempo
    (slower at the ends of a phrase, +-4 %); duration contrast (IOIs under 0.25 s 4 % shorter, over 0.75 s 3 %
    longer); fermatas held 1.5x then a breath of 0.15-0.35 s (punctuation); final ritardando over the last 3 notes
    (to 80 % of the tempo); legato: each note lasts to the next onset, except a repeated pitch (re-articulated 40 ms
    early), half the leaps of a fifth or more (30 ms micropause) and phrase ends."""
    seconds_per_quarter = 60.0 / rng.uniform(60.0, 96.0)
    phrases = np.cumsum([0] + [int(n.fermata) for n in melody[:-1]])
    timed, time = [], LEAD_IN_SECONDS
    for index, note in enumerate(melody):
        gap_ql = note.start - (melody[index - 1].start + melody[index - 1].length) if index else 0.0
        time += max(0.0, gap_ql) * seconds_per_quarter
        members = np.flatnonzero(phrases == phrases[index])
        position = (index - members[0]) / max(len(members) - 1, 1)
        rate = seconds_per_quarter * (1.0 + 0.04 * (2.0 * abs(position - 0.5) - 0.5))  # phrase arch
        ioi = note.length * rate
        ioi *= 0.96 if ioi < 0.25 else 1.03 if ioi > 0.75 else 1.0  # duration contrast
        if index >= len(melody) - 3:
            ioi /= 1.0 - 0.2 * (index - len(melody) + 4) / 3.0  # final ritardando
        if note.fermata:
            ioi *= 1.5
        timed.append({"pitch": note.pitch, "onset": time, "ioi": ioi, "fermata": note.fermata,
                      "phrase": int(phrases[index]), "rest_after": False})
        time += ioi
        if note.fermata and index + 1 < len(melody):
            time += rng.uniform(0.15, 0.35)  # breath or bow lift
    for index, item in enumerate(timed):
        nxt = timed[index + 1] if index + 1 < len(timed) else None
        end = item["onset"] + item["ioi"]
        if nxt is None or nxt["onset"] > end + 1e-6 or item["fermata"]:
            offset = end - 0.03 * item["fermata"]  # phrase end or rest: as written
        elif nxt["pitch"] == item["pitch"]:
            offset = end - LEGATO_REPEAT_GAP
        elif abs(nxt["pitch"] - item["pitch"]) >= LEAP_SEMITONES and rng.random() < 0.5:
            offset = end - 0.03
        else:
            offset = nxt["onset"]  # legato: the notes touch
        item["offset"] = max(item["onset"] + MIN_NOTE_SECONDS, offset)
    return _cut_at_phrase_end(timed, max_seconds)


def _musical_envelope_db(level_db: np.ndarray, eases_off: bool, rng: np.random.Generator) -> np.ndarray:
    """CC11 of one note in dB (0 at its loudest frame): the phrase's level contour over the note's frames
    (`level_db`, (frames,)), a small natural drift (a smoothed random walk, sd ~0.2 dB) and, when the player eases
    off before a rest or a phrase end (`eases_off`) on a note over 0.6 s, a 1-3 dB taper over its last 30 %."""
    n_frames = level_db.shape[0]
    drift = np.cumsum(rng.normal(0.0, 0.03, n_frames))
    drift = np.clip(drift - np.linspace(drift[0], drift[-1], n_frames) * 0.5, -0.6, 0.6)
    position = np.arange(n_frames) / max(n_frames - 1, 1)
    taper = 0.0
    if eases_off and n_frames / FRAME_RATE > 0.6:
        taper = -rng.uniform(1.0, 3.0) * np.clip((position - 0.7) / 0.3, 0.0, 1.0)
    envelope = level_db + drift - drift.mean() + taper
    return envelope - envelope.max()


def _phrase_contour_db(t: np.ndarray, start: float, end: float, depth_db: float) -> np.ndarray:
    """The phrase arch as a level contour in time (Todd 1992): a half sine over the phrase from `start` to `end`
    (s), `depth_db` louder in its middle than at its ends, 0 dB at the ends. t: (frames,) s -> (frames,) dB."""
    u = np.clip((t - start) / max(end - start, 1e-3), 0.0, 1.0)
    return depth_db * np.sin(np.pi * u)


def _musical_vibrato(n_frames: int, duration: float, style: PlayingStyle, rng: np.random.Generator) -> np.ndarray:
    """Vibrato as players use it: only on notes of 0.35 s or more (and `style.vibrato_share` of them), starting
    after a delay, fading in over 0.15-0.3 s, at the instrument's rate and extent."""
    if duration < 0.35 or style.vibrato_extent[1] <= 0 or rng.random() >= style.vibrato_share:
        return np.zeros(n_frames)
    extent = rng.uniform(*style.vibrato_extent)
    rate = rng.uniform(*style.vibrato_rate)
    delay = min(rng.uniform(*style.vibrato_delay), 0.4 * duration)
    fade = rng.uniform(0.15, 0.3)
    t = np.arange(n_frames) / FRAME_RATE
    return extent * np.clip((t - delay) / fade, 0.0, 1.0) * np.sin(2 * np.pi * rate * (t - delay))


def perform_musical(melody: list[MelodyNote], instrument: Instrument, rng: np.random.Generator,
                    max_seconds: float = 20.0, transpose: int | None = None) -> Performance:
    """One voice -> a musical performance (the default a producer expects): KTH timing rules, legato phrases, a
    dynamic per piece (p..f) shaped by a phrase arch that is a level contour in time (6-10 dB louder in a phrase's
    middle than at its ends, so notes before the middle grow and notes after it fade), high-loud (+3 dB an octave)
    and duration contrast (short notes -1.5 dB, long +1 dB), a steady sustain and idiomatic vibrato. The velocity
    carries a note's loudest level, its CC11 the contour within it."""
    if transpose is None:
        transpose = place_in_range([n.pitch for n in melody], instrument.low, instrument.high, rng)
    style = PLAYING_STYLES.get(instrument.name, DEFAULT_STYLE)
    timed = _musical_timeline(melody, rng, max_seconds)
    duration = timed[-1]["offset"] + TAIL_SECONDS
    score = _Score(int(math.ceil(duration * FRAME_RATE)) + 1)
    dynamic_db = DYNAMICS_DB[str(rng.choice(list(DYNAMICS_DB), p=[0.15, 0.25, 0.4, 0.2]))]
    arch_depth_db = rng.uniform(*PHRASE_ARCH_DB)
    pitches = [fold_into_range(n["pitch"] + transpose, instrument.low, instrument.high) for n in timed]
    mean_pitch = float(np.mean(pitches))
    phrases = sorted({n["phrase"] for n in timed})
    channel_filters = {c: (0.0, 0.0) for p in phrases for c in _phrase_channels(p)}
    members = {p: [i for i, n in enumerate(timed) if n["phrase"] == p] for p in phrases}
    for index, (item, pitch) in enumerate(zip(timed, pitches)):
        group = members[item["phrase"]]
        _, _, onset, offset, first, frames = score.frames_of(item)
        t = (first + np.arange(frames)) / FRAME_RATE
        span = (timed[group[0]]["onset"], timed[group[-1]]["offset"])
        contour = _phrase_contour_db(t, *span, arch_depth_db) - arch_depth_db * 2.0 / 3.0  # the dynamic ~ its mean
        ioi = item["ioi"]
        contrast = -1.5 if ioi < 0.25 else 1.0 if ioi > 0.75 else 0.0
        peak_db = dynamic_db + float(contour.max()) + 3.0 * (pitch - mean_pitch) / 12.0 + contrast \
            + rng.normal(0.0, 0.7)
        velocity = int(np.clip(_db_to_midi(min(peak_db, 0.0)), 1, 127))
        following = timed[index + 1] if index + 1 < len(timed) else None
        eases_off = following is None or following["onset"] > item["offset"] + 1e-3 or item["fermata"]
        envelope = _musical_envelope_db(contour, eases_off, rng)
        bend = _musical_vibrato(frames, offset - onset, style, rng) + rng.normal(0.0, 0.03)
        score.add(item, pitch, _phrase_channels(item["phrase"])[group.index(index) % 2], velocity, 127, envelope,
                  bend)
    return score.performance(duration, channel_filters, transpose)
