"""A Live Object Model simulator: loads the DDSPInstrument Remote Script, unchanged, outside Ableton Live.

It provides what the script imports from Live (`_Framework.ControlSurface.ControlSurface`, and a `Live` module for
completeness) and the LOM objects it touches: Song, Song.View, Track, ClipSlot, Clip, MidiNote, Envelope, Device,
RackDevice, DeviceParameter, each with exactly the members the script uses. tests/test_ableton_lom.py checks every
member against a table transcribed from Cycling '74's LOM reference and Live's runtime docstrings.

What Live does that is modelled, as the references describe it:
- read-only members raise AttributeError when assigned, missing members raise AttributeError;
- `Clip.automation_envelope` returns None for Arrangement clips, for parameters of another track, and when there
  is no envelope; `create_automation_envelope` raises where no envelope can be created (Arrangement clips, other
  tracks, an envelope that already exists);
- `Track.create_audio_clip(path, beats)` raises on MIDI tracks, for times outside [0, 1576800] and for files that
  are not audio; `ClipSlot.create_audio_clip(path)` raises on full slots and MIDI tracks; `ClipSlot.delete_clip`
  raises on empty slots; `Track.delete_clip` raises for a clip of another track;
- `get_notes_extended` returns copies of the notes *starting* in the pitch and time range;
- envelope values are stored as float32; a step overwrites what was in its range;
- `DeviceParameter.value` raises outside [min, max]; `Clip.warping` raises on MIDI clips.
Not modelled (and so not verified here): Live's undo history, clip overlap trimming in the Arrangement, warping of
imported audio, Live's rate limits and timing, notifications/listeners (the script uses none), Live's GUI.

Live versions: `LiveSim(version=...)` simulates one Live version. `MEMBER_TYPES` says, per member and per Live
version, whether the member exists and what it returns, transcribed from Live's API stubs (generated from Live's own
runtime, versions 11.0 to 12.3.6). A member missing in that version raises AttributeError (so `hasattr` is False); a
method whose C++ function is void in that version returns None whatever the simulation computed (e.g.
`Track.create_audio_clip` before 12.2); every other value is checked against the declared type, so the simulator
cannot hand the script something Live would not.

The pump: `LiveSim.tick()` calls the script's `update_display()`, as Live's ~100 ms timer does; `run_until`
ticks until a condition holds. Public member accesses made while the script runs are recorded in `accessed`.
"""
from __future__ import annotations

import importlib.util
import os
import struct
import sys
import time
import types

import soundfile

MAX_ARRANGEMENT_TIME = 1576800.0  # beats (Track.create_audio_clip)
DEFAULT_VERSION = "12.1.0"  # the oldest Live the script supports (docs/ableton.md)
STUBS = "https://github.com/PhotonicVelocity/LiveAPI/tree/main/stubs/<version>/Live/<module>.pyi"

# Every member the simulator offers: from which Live version on it exists and what it returns (a property's value, a
# method's result), as Live's API stubs say (STUBS, versions 11.0.0, 11.3.25, 12.0.0, 12.0.5, 12.1.0, 12.2.0, 12.3.6
# compared; "-": absent from that version on). Types: float, int, bool, str, None (a void C++ function), a LOM class
# name, "X?" (an X or None: the runtime docstring says None can come back), "X[]" (a sequence of X).
def _t(kind, *changes):
    """A member present since Live 11.0 returning `kind`, then `changes`: (version, kind or "-") pairs."""
    return (("11.0.0", kind),) + changes


MEMBER_TYPES = {
    "Song.tempo": _t("float"),
    "Song.tracks": _t("Track[]"),
    "Song.view": _t("Song.View"),
    "Song.create_audio_track": _t("Track"),
    "Song.View.detail_clip": _t("Clip?"),
    "Track.name": _t("str"),
    "Track.has_midi_input": _t("bool"),
    "Track.devices": _t("Device[]"),
    "Track.clip_slots": _t("ClipSlot[]"),
    "Track.arrangement_clips": _t("Clip[]"),
    # Live 11.3.25 adds it (returning nothing), 12.0.0 lacks it, 12.0.5 has it again (void), 12.2.0 returns the Clip
    "Track.create_audio_clip": _t("-", ("11.3.25", "None"), ("12.0.0", "-"), ("12.0.5", "None"), ("12.2.0", "Clip")),
    "Track.delete_clip": _t("None"),
    "ClipSlot.has_clip": _t("bool"),
    "ClipSlot.clip": _t("Clip?"),
    "ClipSlot.create_audio_clip": _t("-", ("11.3.25", "Clip"), ("12.0.0", "-"), ("12.0.5", "Clip")),
    "ClipSlot.delete_clip": _t("None"),
    "Clip.name": _t("str"),
    "Clip.is_midi_clip": _t("bool"),
    "Clip.is_arrangement_clip": _t("bool"),
    "Clip.start_time": _t("float"),
    "Clip.end_time": _t("float"),
    "Clip.length": _t("float"),
    "Clip.looping": _t("bool"),
    "Clip.loop_start": _t("float"),
    "Clip.loop_end": _t("float"),
    "Clip.start_marker": _t("float"),
    "Clip.end_marker": _t("float"),
    "Clip.warping": _t("bool"),
    "Clip.file_path": _t("str"),
    "Clip.get_notes_extended": _t("MidiNote[]"),
    # the envelope class is Live.Clip.AutomationEnvelope up to 12.1, Live.Envelope.Envelope from 12.2
    "Clip.automation_envelope": _t("Clip.AutomationEnvelope?", ("12.2.0", "Envelope?")),
    "Clip.create_automation_envelope": _t("Clip.AutomationEnvelope", ("12.2.0", "Envelope")),
    "MidiNote.note_id": _t("int"),
    "MidiNote.pitch": _t("int"),
    "MidiNote.start_time": _t("float"),
    "MidiNote.duration": _t("float"),
    "MidiNote.velocity": _t("float"),
    "MidiNote.mute": _t("bool"),
    "Clip.AutomationEnvelope.insert_step": _t("None", ("12.2.0", "-")),
    "Clip.AutomationEnvelope.value_at_time": _t("float", ("12.2.0", "-")),
    "Envelope.insert_step": _t("-", ("12.2.0", "None")),
    "Envelope.value_at_time": _t("-", ("12.2.0", "float")),
    "Device.name": _t("str"),
    "Device.can_have_chains": _t("bool"),
    "Device.parameters": _t("DeviceParameter[]"),
    "RackDevice.can_have_chains": _t("bool"),
    "DeviceParameter.name": _t("str"),
    "DeviceParameter.value": _t("float"),
    "DeviceParameter.min": _t("float"),
    "DeviceParameter.max": _t("float"),
}


def version_tuple(version: str) -> tuple:
    return tuple(int(part) for part in version.split("."))


def member_type(member: str, version: str):
    """What `member` returns in that Live version ("-": it does not exist there), per MEMBER_TYPES."""
    kind = "-"
    for since, what in MEMBER_TYPES[member]:
        if version_tuple(version) >= version_tuple(since):
            kind = what
    return kind


def conforms(value, kind: str) -> bool:
    """Whether `value` is what Live returns for a member of type `kind`."""
    if kind == "None":
        return value is None
    if kind.endswith("?"):
        return value is None or conforms(value, kind[:-1])
    if kind.endswith("[]"):
        return isinstance(value, tuple) and all(conforms(v, kind[:-2]) for v in value)
    if kind in ("float", "str"):
        return type(value) is {"float": float, "str": str}[kind]
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, LOM) and any(getattr(k, "LOM_NAME", None) == kind for k in type(value).__mro__)


def _f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


class LOM:
    """Base of the simulated LOM classes: public members are declared on the class (properties and methods)."""
    _sim = None

    def __getattribute__(self, name):
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        sim = object.__getattribute__(self, "_sim")
        owner = _owner(type(self), name)
        kind = _available(sim, owner)
        if sim is not None and sim.recording:
            sim.accessed.add((owner, "call" if callable(getattr(type(self), name, None)) else "get"))
        value = object.__getattribute__(self, name)
        if kind is None:
            return value
        if callable(value):
            return _typed_method(value, owner, kind, sim.version)
        if not conforms(value, kind):
            raise TypeError("simulator: %s gave %r; Live %s gives %s" % (owner, value, sim.version, kind))
        return value

    def __setattr__(self, name, value):
        if not name.startswith("_"):
            spec = getattr(type(self), name, None)
            if not isinstance(spec, property) or spec.fset is None:
                raise AttributeError("%s.%s cannot be set" % (type(self).LOM_NAME, name))
            sim = object.__getattribute__(self, "_sim")
            _available(sim, _owner(type(self), name))
            if sim is not None and sim.recording:
                sim.accessed.add((_owner(type(self), name), "set"))
        object.__setattr__(self, name, value)


def _available(sim, owner: str):
    """The member's type in the simulated Live version (None when unknown: no sim, not a member); AttributeError
    when that version lacks it."""
    if sim is None or owner not in MEMBER_TYPES:
        return None
    kind = member_type(owner, sim.version)
    if kind == "-":
        raise AttributeError("%s does not exist in Live %s" % (owner, sim.version))
    return kind


def _typed_method(method, owner: str, kind: str, version: str):
    """A simulated method as Live's version of it: a void one returns None, any other result is type-checked."""
    def call(*args):
        result = method(*args)
        if kind == "None":
            return None
        if not conforms(result, kind):
            raise TypeError("simulator: %s returned %r; Live %s returns %s" % (owner, result, version, kind))
        return result

    call.__name__ = method.__name__
    return call


def _owner(cls, name: str) -> str:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return "%s.%s" % (klass.LOM_NAME, name)
    return "%s.%s" % (cls.LOM_NAME, name)


def public_members(cls) -> dict:
    """{member name: "property" | "settable" | "method"} declared on a simulated class and its bases."""
    out = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if name.startswith("_") or name == "LOM_NAME":
                continue
            if isinstance(value, property):
                out[name] = "settable" if value.fset else "property"
            elif callable(value):
                out[name] = "method"
    return out


# ------------------------------------------------------------------------------------------------ devices

class DeviceParameter(LOM):
    LOM_NAME = "DeviceParameter"

    def __init__(self, sim, track, name, value=0.0, low=0.0, high=127.0):
        self._sim, self._track, self._name, self._value, self._min, self._max = sim, track, name, value, low, high

    @property
    def name(self):
        return self._name

    @property
    def min(self):
        return self._min

    @property
    def max(self):
        return self._max

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, value):
        if not self._min <= value <= self._max:
            raise ValueError("Invalid value (%r outside %r..%r)" % (value, self._min, self._max))
        self._value = float(value)


class Device(LOM):
    LOM_NAME = "Device"

    def __init__(self, sim, track, name, parameters=()):
        self._sim, self._track, self._name = sim, track, name
        self._parameters = [DeviceParameter(sim, track, "Device On", 1.0, 0.0, 1.0)] + list(parameters)

    @property
    def name(self):
        return self._name

    @property
    def can_have_chains(self):
        return False

    @property
    def parameters(self):
        return tuple(self._parameters)


class RackDevice(Device):
    """A rack: "Device On", 16 macros (the first named by `macro_names`, the rest "Macro N"), "Chain Selector"."""
    LOM_NAME = "RackDevice"

    def __init__(self, sim, track, name, macro_names=()):
        macros = [DeviceParameter(sim, track, macro_names[i] if i < len(macro_names) else "Macro %d" % (i + 1))
                  for i in range(16)]
        super().__init__(sim, track, name, macros + [DeviceParameter(sim, track, "Chain Selector")])

    @property
    def can_have_chains(self):
        return True

    def _macro(self, name):
        return next(p for p in self._parameters if p._name == name)


# ------------------------------------------------------------------------------------------------ clips

class MidiNote(LOM):
    LOM_NAME = "MidiNote"

    def __init__(self, sim, note: dict):
        self._sim, self._note = sim, dict(note)

    @property
    def note_id(self):
        return self._note["note_id"]

    @property
    def pitch(self):
        return self._note["pitch"]

    @property
    def start_time(self):
        return self._note["start_time"]

    @property
    def duration(self):
        return self._note["duration"]

    @property
    def velocity(self):
        return self._note["velocity"]

    @property
    def mute(self):
        return self._note["mute"]


class _Steps(LOM):
    """A clip envelope's steps; the public class is AutomationEnvelope up to Live 12.1, Envelope from 12.2."""
    LOM_NAME = "_Steps"

    def __init__(self, sim, clip, parameter):
        self._sim, self._clip, self._parameter = sim, clip, parameter
        self._default = _f32(parameter._value)
        self._steps = []  # [start, end, value] in insertion order; a later step wins where they overlap

    def _insert_step(self, start_time, length, value):
        p = self._parameter
        if not p._min <= value <= p._max:
            raise ValueError("Invalid value (%r outside %r..%r)" % (value, p._min, p._max))
        self._insert(float(start_time), float(length), float(value))

    def _value_at(self, time):
        for start, end, value in reversed(self._steps):
            if start <= time < end:
                return value
        return self._default

    def _insert(self, start, length, value):
        self._steps = [s for s in self._steps if not (start <= s[0] and s[1] <= start + length)]
        self._steps.append([start, start + length, _f32(value)])


class AutomationEnvelope(_Steps):
    """Live.Clip.AutomationEnvelope (Live 11.0-12.1): only insert_step and value_at_time."""
    LOM_NAME = "Clip.AutomationEnvelope"

    def insert_step(self, start_time, length, value):
        self._insert_step(start_time, length, value)

    def value_at_time(self, time):
        return self._value_at(time)


class Envelope(_Steps):
    """Live.Envelope.Envelope (Live 12.2+; it has more members, which the script does not use)."""
    LOM_NAME = "Envelope"

    def insert_step(self, start_time, length, value):
        self._insert_step(start_time, length, value)

    def value_at_time(self, time):
        return self._value_at(time)


class Clip(LOM):
    LOM_NAME = "Clip"

    def __init__(self, sim, track, midi, arrangement, start=0.0, length=4.0, looping=False, loop=None, name="",
                 file_path=None):
        self._sim, self._track, self._midi, self._arrangement = sim, track, midi, arrangement
        self._name, self._start, self._span, self._looping = name, float(start), float(length), looping
        self._loop = loop or (0.0, float(length))  # loop brace (start, end), clip beats
        self._markers = (0.0, float(length))  # start and end markers, clip beats
        self._notes, self._next_id, self._envelopes = [], 1, []
        self._file_path, self._warping = file_path, True

    # ---- members the script uses

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = str(value)

    @property
    def is_midi_clip(self):
        return self._midi

    @property
    def is_arrangement_clip(self):
        return self._arrangement

    @property
    def start_time(self):
        return self._start if self._arrangement else 0.0

    @property
    def end_time(self):
        if self._arrangement:
            return self._start + self._span
        return self._loop[1] if self._looping else self._markers[1]

    @property
    def length(self):
        return self._loop[1] - self._loop[0] if self._looping else self._markers[1] - self._markers[0]

    @property
    def looping(self):
        return self._looping

    @property
    def loop_start(self):
        return self._loop[0]

    @property
    def loop_end(self):
        return self._loop[1]

    @property
    def start_marker(self):
        return self._markers[0]

    @property
    def end_marker(self):
        return self._markers[1]

    @property
    def warping(self):
        self._audio_only("warping")
        return self._warping

    @warping.setter
    def warping(self, value):
        self._audio_only("warping")
        self._warping = bool(value)

    @property
    def file_path(self):
        self._audio_only("file_path")
        return self._file_path

    def get_notes_extended(self, from_pitch, pitch_span, from_time, time_span):
        if not self._midi:
            raise RuntimeError("MIDI clip only")
        return tuple(MidiNote(self._sim, n) for n in self._notes
                     if from_pitch <= n["pitch"] < from_pitch + pitch_span
                     and from_time <= n["start_time"] < from_time + time_span)

    def automation_envelope(self, parameter):
        if self._arrangement or parameter._track is not self._track:
            return None
        return next((e for e in self._envelopes if e._parameter is parameter), None)

    def create_automation_envelope(self, parameter):
        if self._arrangement or parameter._track is not self._track or \
                any(e._parameter is parameter for e in self._envelopes):
            raise RuntimeError("Envelope could not be created")
        kind = Envelope if version_tuple(self._sim.version) >= (12, 2) else AutomationEnvelope
        envelope = kind(self._sim, self, parameter)
        self._envelopes.append(envelope)
        return envelope

    # ---- test helpers (a producer's edits)

    def _audio_only(self, what):
        if self._midi:
            raise RuntimeError("%s: only available for audio clips" % what)

    def _add_note(self, pitch, start, duration, velocity=100, mute=False) -> int:
        note_id, self._next_id = self._next_id, self._next_id + 1
        self._notes.append({"note_id": note_id, "pitch": pitch, "start_time": float(start),
                            "duration": float(duration), "velocity": float(velocity), "mute": mute})
        return note_id

    def _edit_note(self, note_id, **changes):
        next(n for n in self._notes if n["note_id"] == note_id).update(changes)

    def _envelope(self, macro_name):
        return next((e for e in self._envelopes if e._parameter._name == macro_name), None)


class ClipSlot(LOM):
    LOM_NAME = "ClipSlot"

    def __init__(self, sim, track):
        self._sim, self._track, self._clip = sim, track, None

    @property
    def has_clip(self):
        return self._clip is not None

    @property
    def clip(self):
        return self._clip

    def create_audio_clip(self, path):
        if self._clip is not None or self._track._midi:
            raise RuntimeError("Cannot create an audio clip in a non-empty slot or a MIDI track")
        self._clip = self._track._audio_clip(path, False, 0.0)
        return self._clip

    def delete_clip(self):
        if self._clip is None:
            raise RuntimeError("No clip in slot")
        self._clip = None


class Track(LOM):
    LOM_NAME = "Track"

    def __init__(self, sim, name, midi, scenes):
        self._sim, self._name, self._midi = sim, name, midi
        self._slots = [ClipSlot(sim, self) for _ in range(scenes)]
        self._arrangement, self._devices = [], []

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = str(value)

    @property
    def has_midi_input(self):
        return self._midi

    @property
    def devices(self):
        return tuple(self._devices)

    @property
    def clip_slots(self):
        return tuple(self._slots)

    @property
    def arrangement_clips(self):
        return tuple(sorted(self._arrangement, key=lambda c: c._start))

    def create_audio_clip(self, file_path, position):
        if self._midi:
            raise RuntimeError("Cannot create an audio clip on a MIDI track")
        if not 0.0 <= position <= MAX_ARRANGEMENT_TIME:
            raise RuntimeError("Time outside [0, 1576800]")
        clip = self._audio_clip(file_path, True, position)
        self._arrangement.append(clip)
        return clip

    def delete_clip(self, clip):
        if not any(c is clip for c in self._arrangement):
            raise RuntimeError("The clip belongs to another track")
        self._arrangement = [c for c in self._arrangement if c is not clip]

    # ---- test helpers

    def _audio_clip(self, path, arrangement, position):
        if not os.path.isabs(path):
            raise RuntimeError("Path must be absolute: %r" % path)
        try:
            info = soundfile.info(path)
        except Exception as error:
            raise RuntimeError("Not a valid audio file: %s" % error) from None
        beats = info.frames / info.samplerate * self._sim.song._tempo / 60.0
        return Clip(self._sim, self, False, arrangement, position, beats, file_path=path)

    def _add_rack(self, name, macro_names):
        rack = RackDevice(self._sim, self, name, macro_names)
        self._devices.append(rack)
        return rack

    def _add_device(self, name):
        device = Device(self._sim, self, name, [DeviceParameter(self._sim, self, "Filter Freq")])
        self._devices.append(device)
        return device

    def _add_session_clip(self, slot, length, name="", looping=False):
        clip = Clip(self._sim, self, True, False, 0.0, length, looping, name=name)
        self._slots[slot]._clip = clip
        return clip

    def _add_arrangement_clip(self, start, span, name="", looping=False, loop=None):
        clip = Clip(self._sim, self, True, True, start, span, looping, loop, name=name)
        if loop:
            clip._markers = (loop[0], loop[1])
        self._arrangement.append(clip)
        return clip


class SongView(LOM):
    LOM_NAME = "Song.View"

    def __init__(self, sim):
        self._sim, self._detail_clip = sim, None

    @property
    def detail_clip(self):
        return self._detail_clip


class Song(LOM):
    LOM_NAME = "Song"

    def __init__(self, sim, tempo, scenes):
        self._sim, self._tempo, self._scenes = sim, float(tempo), scenes
        self._tracks, self._view = [], SongView(sim)

    @property
    def tempo(self):
        return self._tempo

    @property
    def tracks(self):
        return tuple(self._tracks)

    @property
    def view(self):
        return self._view

    def create_audio_track(self, index):
        if index is None or index == -1:
            index = len(self._tracks)
        if not 0 <= index <= len(self._tracks):
            raise RuntimeError("Index out of range")
        track = Track(self._sim, "%d-Audio" % (index + 1), False, self._scenes)
        self._tracks.insert(index, track)
        return track

    def _add_midi_track(self, name):
        track = Track(self._sim, name, True, self._scenes)
        self._tracks.append(track)
        return track


# ------------------------------------------------------------------------------------------------ framework

class CInstance:
    """What Live passes to `create_instance`: the script's link to the host (song, status bar, Log.txt)."""

    def __init__(self, sim):
        self._sim = sim

    def song(self):
        return self._sim.song

    def show_message(self, message):
        self._sim.status.append(str(message))

    def log_message(self, message):
        self._sim.log.append(str(message))


class ControlSurface:
    """`_Framework.ControlSurface.ControlSurface` as far as the script uses it (Live 12's decompiled framework:
    scheduled messages run from `update_display`, which Live calls about every 100 ms)."""

    def __init__(self, c_instance=None, *a, **k):
        self._c_instance = c_instance
        self._scheduled = []  # [ticks left, callback, parameter]

    def song(self):
        return self._c_instance.song()

    def show_message(self, message):
        self._c_instance.show_message(message)

    def log_message(self, *message):
        self._c_instance.log_message("(%s) %s" % (self.__class__.__name__, " ".join(map(str, message))))

    def schedule_message(self, delay_in_ticks, callback, parameter=None):
        self._scheduled.append([max(1, int(delay_in_ticks)), callback, parameter])

    def update_display(self):
        due, self._scheduled = self._scheduled, []
        for task in due:
            task[0] -= 1
            if task[0] > 0:
                self._scheduled.append(task)
            elif task[2]:
                task[1](task[2])
            else:
                task[1]()

    def disconnect(self):
        self._scheduled = []


FRAMEWORK_MEMBERS = ("song", "show_message", "log_message", "schedule_message", "disconnect")


def _modules() -> dict:
    live = types.ModuleType("Live")
    for module_name, classes in {"Song": (Song,), "Track": (Track,), "ClipSlot": (ClipSlot,),
                                 "Clip": (Clip, MidiNote, AutomationEnvelope), "Envelope": (Envelope,),
                                 "Device": (Device,), "RackDevice": (RackDevice,),
                                 "DeviceParameter": (DeviceParameter,)}.items():
        sub = types.ModuleType("Live." + module_name)
        for cls in classes:
            setattr(sub, cls.__name__, cls)
        setattr(live, module_name, sub)
    framework = types.ModuleType("_Framework")
    framework.__path__ = []
    surface = types.ModuleType("_Framework.ControlSurface")
    surface.ControlSurface = ControlSurface
    framework.ControlSurface = surface
    return {"Live": live, "_Framework": framework, "_Framework.ControlSurface": surface}


class LiveSim:
    """One simulated Live Set with the Remote Script loaded into it."""

    def __init__(self, tempo: float = 120.0, scenes: int = 8, version: str = DEFAULT_VERSION):
        self.version = version  # the Live version simulated (MEMBER_TYPES)
        self.accessed = set()  # (Class.member, get|set|call) the script used
        self.recording = False
        self.song = Song(self, tempo, scenes)
        self.status, self.log = [], []  # status-bar messages, Log.txt lines
        self.c_instance = CInstance(self)
        self.surface = None
        self.ticks = 0

    def load(self, remote_scripts: str, name: str = "DDSPInstrument"):
        """Import `<remote_scripts>/<name>` as Live does (a package; `create_instance(c_instance)`)."""
        sys.modules.update(_modules())
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]
        folder = os.path.join(remote_scripts, name)
        spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
        with self._running():
            self.surface = package.create_instance(self.c_instance)
        return self.surface

    def _running(self):
        sim = self

        class Running:
            def __enter__(self):
                sim.recording = True

            def __exit__(self, *exc):
                sim.recording = False

        return Running()

    def tick(self, n: int = 1, sleep: float = 0.0) -> None:
        for _ in range(n):
            with self._running():
                self.surface.update_display()
            self.ticks += 1
            if sleep:
                time.sleep(sleep)

    def run_until(self, condition, timeout: float = 60.0, sleep: float = 0.005, what: str = "condition"):
        """Tick until `condition()` is true; fails with the script's log when `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("%s not reached in %g s; log:\n%s" % (what, timeout, "\n".join(self.log[-30:])))
            self.tick(sleep=sleep)

    def unload(self) -> None:
        with self._running():
            self.surface.disconnect()
