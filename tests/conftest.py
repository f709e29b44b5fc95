import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)


@pytest.fixture
def parametric():
    from engine.presets import load_preset

    return load_preset("parametric")


def write_midi(path, tracks, tempi=((0.0, 120.0),), ticks_per_beat=480):
    """tracks: [(program, [(pitch, start_beat, end_beat, velocity), ...])]; tempi: [(beat, bpm)] -> path."""
    import mido

    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    meta = mido.MidiTrack()
    last = 0
    for beat, bpm in tempi:
        tick = int(round(beat * ticks_per_beat))
        meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=tick - last))
        last = tick
    midi.tracks.append(meta)
    for channel, (program, notes) in enumerate(tracks):
        track = mido.MidiTrack()
        events = [(0, 0, mido.Message("program_change", program=program, channel=channel))]
        for pitch, start, end, velocity in notes:
            events.append((int(round(start * ticks_per_beat)), 2, mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)))
            events.append((int(round(end * ticks_per_beat)), 1, mido.Message("note_off", note=pitch, velocity=0, channel=channel)))
        events.sort(key=lambda e: (e[0], e[1]))
        now = 0
        for tick, _, message in events:
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))
    return path


# Imported at start-up by a Python whose PYTHONPATH holds it: every audio file the process writes through soundfile
# stops half-written, announces the file in $DDSP_TEST_WRITE_MARK and waits to be killed.
SLOW_WRITER = """
import os, time
if os.environ.get("DDSP_TEST_WRITE_MARK"):
    import soundfile
    _write = soundfile.SoundFile.write
    def write(self, data):
        half = len(data) // 2
        _write(self, data[:half])
        self.flush()
        with open(os.environ["DDSP_TEST_WRITE_MARK"], "w") as mark:
            mark.write(str(self.name))
        time.sleep(3600)
        _write(self, data[half:])
    soundfile.SoundFile.write = write
"""


def slow_writer_env(tmp_path) -> dict:
    """Environment for a process whose audio writes stop half-way (SLOW_WRITER); the mark file appears then."""
    hook = tmp_path / "slow_writer"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SLOW_WRITER)
    return {"PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "DDSP_TEST_WRITE_MARK": str(tmp_path / "writing.mark")}


@pytest.fixture(scope="session")
def local_ray():
    """A real local Ray instance (2 CPUs) for the suite, shut down at the end; its workers import this checkout."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
