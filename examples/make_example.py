"""Regenerate examples/bach_bwv66_6.mid: Bach's chorale BWV 66.6 (music21 corpus) as a flute/oboe/clarinet/bassoon
quartet, with a tempo change (84 -> 66 bpm) for the last phrase. Run: python examples/make_example.py"""
from pathlib import Path

import pretty_midi
from music21 import corpus

PARTS = [("Soprano", "flute", 73, 12), ("Alto", "oboe", 68, 12), ("Tenor", "clarinet", 71, 0), ("Bass", "bassoon", 70, 0)]


def main(out: Path = Path(__file__).with_name("bach_bwv66_6.mid")) -> None:
    score = corpus.parse("bach/bwv66.6")
    beats_slow = 28.0  # the tempo changes here (quarter notes from the start)
    midi = pretty_midi.PrettyMIDI(initial_tempo=84)

    def seconds(q: float) -> float:  # at the initial tempo; the tempo change is added to the file below
        return q * 60.0 / 84

    for part, (name, instrument, program, shift) in zip(score.parts, PARTS):
        track = pretty_midi.Instrument(program=program, name=instrument)
        for note in part.flatten().notes:
            start = float(note.offset)
            end = start + float(note.quarterLength)
            track.notes.append(pretty_midi.Note(velocity=80 + (7 * len(track.notes)) % 30, pitch=note.pitch.midi + shift,
                                                start=seconds(start), end=seconds(end) - 0.02))
        midi.instruments.append(track)
    # pretty_midi writes a single tempo: add the change with mido.
    midi.write(str(out))
    import mido

    file = mido.MidiFile(str(out))
    tempo_track = file.tracks[0]
    tick = int(round(beats_slow * file.ticks_per_beat))
    events, now = [], 0
    for msg in tempo_track:
        now += msg.time
        events.append((now, msg))
    events.append((tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(66), time=0)))
    events.sort(key=lambda e: (e[0], e[1].type == "end_of_track"))
    tempo_track.clear()
    last = 0
    for at, msg in events:
        tempo_track.append(msg.copy(time=at - last))
        last = at
    file.save(str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
