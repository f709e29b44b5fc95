"""A REAPER host simulator for the ReaScripts' tests (REAPER itself cannot run here).

`ReaperSim` is one REAPER session: in-memory projects (one per project tab: tracks, items, takes, MIDI at 960 PPQ,
a tempo map, FX with parameters, envelopes with points, ext state), a defer queue, a console, and a `reaper_python`
module with the `RPR_*` functions the scripts call. The scripts run unchanged (`run_script`): as in REAPER, every
script runs in ONE shared `__main__` namespace (REAPER's single Python interpreter), with `reaper_python` in
`sys.modules` and `RPR_defer`/`RPR_atexit` in those globals, `__file__` *not* defined, and deferred code strings
evaluated in the same namespace; REAPER still keeps track of which script instance deferred what (atexit runs when
an instance's defer chain ends or it is terminated). Running a script while an instance of it runs answers REAPER's
"ReaScript task control" dialog with `task_control` ("new instance", "terminate instances" or "abort").

Every `RPR_*` function is checked against the official signature list (tests/reaper_api_signatures.tsv, from
reaper_plugin_functions.h of REAPER v7.78) when it is defined: same name, same parameter count. Calls follow
REAPER's Python conventions (reaper_python.py):
- object pointers are strings '(MediaTrack*)0x000000000000002A'; NULL is '(Type*)0x0000000000000000'; a pointer
  that does not name a live object of that type *in the active project* is passed on as NULL (the real wrapper
  validates every pointer with ValidatePtr, which looks in the active project only); `ValidatePtr2(proj, pointer,
  type)` looks in `proj`;
- a `ReaProject*` of 0 means the current project;
- every non-const `char*` parameter costs a 4 MiB buffer the wrapper allocates and zero-fills, whatever size is
  passed (counted in `string_calls` and `zeroed_bytes`); a string longer than that raises ValueError("byte string
  too long"), as ctypes' create_string_buffer does (`max_strbuf`, 4 MiB);
- `int`, `double` and `bool` arguments go through ctypes (`c_int(1.5)` raises TypeError, so does this);
- `bool` results come back as int (c_byte);
- a function with out-parameters (non-const `char*`, `double*`, `int*`, `bool*`) returns a tuple: the return value
  (omitted for void functions) followed by *every* parameter, out-parameters filled in, the others as passed.

What is modelled, and where it is simpler than REAPER, is listed in docs/reaper.md ("What the simulator models").
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import inspect
import itertools
import re
import sys
import time
import traceback
import types
import uuid
from dataclasses import dataclass
from pathlib import Path

TSV = Path(__file__).with_name("reaper_api_signatures.tsv")
PPQ = 960  # REAPER's default MIDI resolution (ticks per quarter note)
BUILTINS = {"defer": 1, "atexit": 1, "runloop": 1}  # ReaScript built-ins, not in the C API: (code string)
MAX_STRBUF = 4 * 1024 * 1024  # reaper_python.py's rpr_packs: the buffer behind every char* argument
OUT_TYPES = ("char*", "double*", "int*", "bool*")
SQUARE = 1


# ---------------------------------------------------------------------------------------------------- signatures

@dataclass(frozen=True)
class Signature:
    name: str
    returns: str
    params: tuple[tuple[str, str], ...]  # (C type, name)

    @property
    def outs(self) -> tuple[int, ...]:
        return tuple(i for i, (ctype, _) in enumerate(self.params) if ctype in OUT_TYPES)


def load_signatures(path: Path = TSV) -> dict[str, Signature]:
    signatures = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or line.startswith("name\t") or not line.strip():
            continue
        name, returns, count, params = (line.split("\t") + [""])[:4]
        parsed = []
        for param in filter(None, (p.strip() for p in params.split(";"))):
            ctype, _, pname = param.rpartition(" ")
            ctype = ctype.replace(" *", "*").strip()
            if pname.startswith("*"):
                ctype, pname = ctype + "*", pname.lstrip("*")
            parsed.append((ctype, pname))
        if len(parsed) != int(count):
            raise ValueError(f"{name}: {count} parameters announced, {len(parsed)} parsed")
        signatures[name] = Signature(name, returns.strip(), tuple(parsed))
    return signatures


SIGNATURES = load_signatures()


def is_object_pointer(ctype: str) -> bool:
    return ctype.endswith("*") and ctype not in OUT_TYPES and not ctype.startswith("const ") and ctype != "void*"


def null(ctype: str) -> str:
    return f"({ctype})0x0000000000000000"


class SimError(Exception):
    """A script did something REAPER's Python wrapper would refuse (wrong arity, wrong argument type)."""


def _convert_in(ctype: str, value, where: str):
    """What ctypes does to an argument: c_int/c_double/c_byte type checks; strings and pointers pass as str()."""
    base = ctype[:-1] if ctype in ("double*", "int*", "bool*") else ctype
    if base == "int" or base == "unsigned int":
        if isinstance(value, float) or not isinstance(value, int):
            raise SimError(f"{where}: int expected, got {type(value).__name__} {value!r}")
    elif base == "double":
        if not isinstance(value, (int, float)) or isinstance(value, complex):
            raise SimError(f"{where}: number expected, got {type(value).__name__} {value!r}")
    elif base == "bool":
        if not isinstance(value, (int, bool)):
            raise SimError(f"{where}: bool/int expected, got {type(value).__name__} {value!r}")
    return value


def _convert_out(ctype: str, value):
    base = ctype[:-1]
    if base == "char":
        return str(value)
    if base == "double":
        return float(value)
    return int(value)


# ---------------------------------------------------------------------------------------------------- the model

class Obj:
    ctype = "void*"

    def __init__(self, sim: "ReaperSim"):
        self.sim = sim
        self.alive = True
        self.ptr = sim._register(self)

    @property
    def project(self) -> "Project | None":
        """The project the object lives in (None: not tied to one, like a PCM source)."""
        return None


@dataclass
class Note:
    start: float  # ppq
    end: float
    pitch: int
    vel: int = 100
    chan: int = 0
    muted: bool = False
    selected: bool = False


@dataclass
class CC:
    """A MIDI item's CC-lane event (REAPER's MIDI_GetCC): ppq, status nibble (0xA0 poly aftertouch, 0xB0 CC, 0xD0
    channel pressure, 0xE0 pitch bend), channel, the two data bytes (pitch bend: LSB, MSB), and the shape of the
    line to the lane's next event (MIDI_GetCCShape: 0 square, 1 linear, 2 slow start/end, 3 fast start, 4 fast end,
    5 bezier)."""
    ppq: float
    chanmsg: int
    chan: int
    msg2: int
    msg3: int = 0
    shape: int = 0
    beztension: float = 0.0
    muted: bool = False
    selected: bool = False


class Source(Obj):
    ctype = "PCM_source*"

    def __init__(self, sim, path: str):
        super().__init__(sim)
        self.path = path

    @property
    def length(self) -> float:
        import soundfile
        info = soundfile.info(self.path)
        return info.frames / info.samplerate


class Take(Obj):
    ctype = "MediaItem_Take*"

    def __init__(self, sim, item: "Item", notes: list[Note] | None = None):
        super().__init__(sim)
        self.item = item
        self.notes = notes  # None: not MIDI
        self.ccs: list[CC] = []
        self.source: Source | None = None
        self.name = ""
        self.start_offset = 0.0  # seconds (D_STARTOFFS); for MIDI in quarter notes via the tempo map

    @property
    def project(self) -> "Project":
        return self.item.project

    @property
    def is_midi(self) -> bool:
        return self.notes is not None

    def sorted_notes(self) -> list[Note]:
        return sorted(self.notes, key=lambda n: (n.start, n.pitch))

    def sorted_ccs(self) -> list[CC]:
        """REAPER keeps a take's CC events sorted by position."""
        return sorted(self.ccs, key=lambda c: c.ppq)


class Item(Obj):
    ctype = "MediaItem*"

    def __init__(self, sim, track: "Track", position: float, length: float, beats: bool):
        super().__init__(sim)
        self.track = track
        self.guid = "{" + str(uuid.UUID(int=sim._rng.getrandbits(128))).upper() + "}"
        self.beats = beats  # timebase beats: position and length follow tempo changes
        self.qn = (track.project.qn_at(position), track.project.qn_at(position + length)) if beats else None
        self._position, self._length = position, length
        self.takes: list[Take] = []
        self.active = 0
        self.selected = False
        self.ext: dict[str, str] = {}
        self.info = {"B_LOOPSRC": 0.0, "B_MUTE": 0.0, "D_VOL": 1.0, "D_FADEINLEN": 0.01, "D_FADEOUTLEN": 0.01}

    @property
    def project(self) -> "Project":
        return self.track.project

    @property
    def position(self) -> float:
        return self.project.time_at(self.qn[0]) if self.beats else self._position

    @property
    def length(self) -> float:
        return self.project.time_at(self.qn[1]) - self.position if self.beats else self._length

    def set_position(self, value: float) -> None:
        if self.beats:
            span = self.qn[1] - self.qn[0]
            start = self.project.qn_at(value)
            self.qn = (start, start + span)
        self._position = value

    def set_length(self, value: float) -> None:
        if self.beats:
            self.qn = (self.qn[0], self.project.qn_at(self.position + value))
        self._length = value

    @property
    def take(self) -> Take | None:
        return self.takes[self.active] if self.takes else None


@dataclass
class Param:
    name: str
    value: float
    minimum: float
    maximum: float


class FX:
    def __init__(self, name: str, ident: str, params: list[Param]):
        self.name, self.ident, self.params = name, ident, params  # name: as shown (the user may rename it)
        self.envelopes: dict[int, Envelope] = {}


@dataclass
class Point:
    time: float
    value: float
    shape: int = 0
    tension: float = 0.0
    selected: bool = False


class Envelope(Obj):
    ctype = "TrackEnvelope*"

    def __init__(self, sim, track: "Track", fx: FX, param: int):
        super().__init__(sim)
        self.track, self.fx, self.param = track, fx, param
        self.points: list[Point] = []
        self.info: dict[str, str] = {}

    @property
    def project(self) -> "Project":
        return self.track.project

    def evaluate(self, t: float) -> float:
        """The envelope's value at project time t: before the first point its value; a square point holds until
        the next point; a linear (or any other shape, simplified) point ramps linearly to the next one; no points:
        the parameter's own value."""
        points = self.points
        if not points:
            return self.fx.params[self.param].value
        if t < points[0].time:
            return points[0].value
        previous = None
        for i, point in enumerate(points):
            if point.time <= t:
                previous = i
            else:
                break
        p0 = points[previous]
        if previous + 1 >= len(points) or p0.shape == SQUARE:
            return p0.value
        p1 = points[previous + 1]
        if p1.time <= p0.time:
            return p1.value
        return p0.value + (p1.value - p0.value) * (t - p0.time) / (p1.time - p0.time)


class Track(Obj):
    ctype = "MediaTrack*"

    def __init__(self, sim, project: "Project", name: str = ""):
        super().__init__(sim)
        self._project = project
        self.name = name
        self.guid = "{" + str(uuid.UUID(int=sim._rng.getrandbits(128))).upper() + "}"
        self.items: list[Item] = []
        self.fx: list[FX] = []
        self.ext: dict[str, str] = {}
        self.selected = False

    @property
    def project(self) -> "Project":
        return self._project

    def sorted_items(self) -> list[Item]:
        return sorted((i for i in self.items if i.alive), key=lambda i: i.position)


class Project(Obj):
    ctype = "ReaProject*"

    def __init__(self, sim, tempo: list[tuple[float, float]], sample_rate: int, path: str):
        super().__init__(sim)
        self.tracks: list[Track] = []
        self.tempo = sorted(tempo)  # [(quarter note, bpm)], constant tempo from each marker on
        self.sample_rate = sample_rate
        self.path = path
        self.ext: dict[tuple[str, str], str] = {}
        self.state_count = 1
        self.file_name = ""

    @property
    def project(self) -> "Project":
        return self

    def _segments(self):
        """[(qn, time, bpm)] for each tempo marker."""
        out, qn0, t0, bpm0 = [], 0.0, 0.0, self.tempo[0][1]
        for qn, bpm in self.tempo:
            t0 += (qn - qn0) * 60.0 / bpm0
            out.append((qn, t0, bpm))
            qn0, bpm0 = qn, bpm
        return out

    def time_at(self, qn: float) -> float:
        seg = [s for s in self._segments() if s[0] <= qn] or [self._segments()[0]]
        q0, t0, bpm = seg[-1]
        return t0 + (qn - q0) * 60.0 / bpm

    def qn_at(self, t: float) -> float:
        seg = [s for s in self._segments() if s[1] <= t] or [self._segments()[0]]
        q0, t0, bpm = seg[-1]
        return q0 + (t - t0) * bpm / 60.0

    def items(self) -> list[Item]:
        return [item for track in self.tracks for item in track.sorted_items()]


# ---------------------------------------------------------------------------------------------------- the session

@dataclass(eq=False)
class Instance:
    """One run of a script (REAPER tracks each; they all share one __main__ namespace)."""
    number: int
    path: Path


class ReaperSim:
    """One REAPER session. Build a project with `add_track`, `add_midi_item`, `set_tempo` (more project tabs:
    `add_project`, `switch_project`); run scripts with `run_script(path)` and their defer loops with
    `run_until(...)`; read what they did from the model, `console`, `calls`/`call_counts`/`string_calls`."""

    INTERPRETER_MODULES = ("reaper_python", "ddsp_reaper", "daw_bridge")

    def __init__(self, resource_path: str | Path, project_path: str | Path, sample_rate: int = 22050,
                 tempo: list[tuple[float, float]] = ((0.0, 120.0),), device_rate: int = 48000, seed: int = 0):
        import random
        self._rng = random.Random(seed)
        self._objects: dict[str, Obj] = {}
        self._addresses = itertools.count(0x10000)
        self.resource_path = str(resource_path)
        self.projects: list[Project] = [Project(self, list(tempo), sample_rate, str(project_path))]
        self.project = self.projects[0]  # the active project tab
        self.device_rate = device_rate
        self.ext_state: dict[tuple[str, str], str] = {}  # global ext state (SetExtState)
        self.console: list[str] = []
        self.calls: list[str] = []  # every API call's name, in order
        self.call_counts: collections.Counter = collections.Counter()  # name -> calls
        self.string_calls: collections.Counter = collections.Counter()  # name -> calls with a char* buffer
        self.zeroed_bytes = 0  # what the wrapper allocated and zero-filled for char* arguments
        self.max_strbuf = MAX_STRBUF  # a longer string in a char* argument raises ValueError
        self.longest_string = 0  # the longest string a script passed in a char* argument (bytes)
        self.task_control = "new instance"  # the answer to REAPER's "ReaScript task control" dialog
        self.task_control_asked: list[str] = []  # the scripts it was asked for
        self.user_inputs: list[str | None] = []  # answers for GetUserInputs, in order; None cancels
        self.commands: list[int] = []
        self.errors: list[str] = []  # tracebacks of script code that raised (REAPER shows them in a dialog)
        self.undo: list[str] = []
        self._undo_depth = 0
        self._deferred: list[tuple[Instance, str]] = []
        self._atexit: dict[int, list[str]] = {}
        self._instances = itertools.count(1)
        self._current: Instance | None = None
        self.main: dict = {"__name__": "__main__", "__builtins__": __builtins__}  # the one __main__ of all scripts
        self.main["RPR_defer"] = self._defer
        self.main["RPR_runloop"] = self._defer
        self.main["RPR_atexit"] = self._at_exit
        self._modules: dict[str, types.ModuleType] = {}  # this session's interpreter: module cache
        self.module = self._build_module()

    # ------------------------------------------------------------------------------------------ pointers

    def _register(self, obj: Obj) -> str:
        ptr = f"({obj.ctype})0x{next(self._addresses):016X}"
        self._objects[ptr] = obj
        return ptr

    def _resolve(self, ctype: str, value):
        """A pointer argument -> the live object, or None (NULL). The wrapper validates pointers in the active
        project only: an item of another project tab is passed on as NULL."""
        if ctype == "ReaProject*" and value in (0, None, ""):
            return self.project
        obj = self._objects.get(str(value))
        if obj is None or not obj.alive or (ctype != "void*" and obj.ctype != ctype):
            return None
        if obj.project is not None and obj.project is not self.project and not isinstance(obj, Project):
            return None
        return obj

    def changed(self, project: "Project | None" = None) -> None:
        (project or self.project).state_count += 1

    def add_project(self, project_path: str | Path, sample_rate: int = 22050,
                    tempo: list[tuple[float, float]] = ((0.0, 120.0),)) -> Project:
        """A new project tab (it becomes the active one, as File > New project tab does)."""
        project = Project(self, list(tempo), sample_rate, str(project_path))
        self.projects.append(project)
        self.project = project
        return project

    def switch_project(self, project: Project) -> None:
        """Click another project tab."""
        self.project = project

    # ------------------------------------------------------------------------------------------ building a project

    def add_track(self, name: str) -> Track:
        track = Track(self, self.project, name)
        self.project.tracks.append(track)
        self.changed()
        return track

    def add_midi_item(self, track: Track, start_qn: float, length_qn: float,
                      notes: list[tuple[float, float, int, int]], beats: bool = True) -> Item:
        """notes: (start qn, end qn relative to the item start, pitch, velocity)."""
        position = track.project.time_at(start_qn)
        item = Item(self, track, position, track.project.time_at(start_qn + length_qn) - position, beats)
        take = Take(self, item, [Note(s * PPQ, e * PPQ, pitch, vel) for s, e, pitch, vel in notes])
        item.takes.append(take)
        track.items.append(item)
        self.changed()
        return item

    def add_cc(self, item: Item, qn: float, chanmsg: int, chan: int, msg2: int, msg3: int = 0, shape: int = 0) -> CC:
        """A CC-lane event at `qn` quarter notes from the item's start (what drawing in a CC lane makes)."""
        cc = CC(qn * PPQ, chanmsg, chan, msg2, msg3, shape)
        item.take.ccs.append(cc)
        self.changed(item.project)
        return cc

    def add_bend(self, item: Item, qn: float, value: int, chan: int = 0, shape: int = 0) -> CC:
        """A pitch-bend event, value -8192..8191 (0 = centre)."""
        raw = value + 8192
        return self.add_cc(item, qn, 0xE0, chan, raw & 0x7F, raw >> 7, shape)

    def set_cc(self, item: Item, cc: CC, **changes) -> None:
        """Edit a CC event (drag it in the CC lane)."""
        for name, value in changes.items():
            setattr(cc, name, value)
        self.changed(item.project)

    def add_audio_item(self, track: Track, path: str, position: float, length: float) -> Item:
        item = Item(self, track, position, length, beats=False)
        take = Take(self, item)
        take.source = Source(self, path)
        item.takes.append(take)
        track.items.append(item)
        self.changed()
        return item

    def select_only(self, *items: Item) -> None:
        for item in self.project.items():
            item.selected = item in items

    def rename_fx(self, track: Track, index: int, name: str) -> None:
        """What the FX chain's Rename does: the shown name changes, the effect (its fx_ident) does not."""
        track.fx[index].name = name
        self.changed(track.project)

    def set_tempo(self, markers: list[tuple[float, float]]) -> None:
        """Replace the tempo map; items in beats timebase keep their quarter-note positions (REAPER's default)."""
        self.project.tempo = sorted(markers)
        self.changed()

    def tracks_named(self, name: str) -> list[Track]:
        return [t for t in self.project.tracks if t.alive and t.name == name]

    # ------------------------------------------------------------------------------------------ the interpreter

    @contextlib.contextmanager
    def interpreter(self):
        """Run code as inside this session's REAPER: its own module cache for the scripts' modules and
        `reaper_python`, its own sys.path additions; the test process's modules are put back afterwards."""
        def ours(name):
            return any(name == m or name.startswith(m + ".") for m in self.INTERPRETER_MODULES)
        saved = {name: mod for name, mod in list(sys.modules.items()) if ours(name)}
        saved_path = list(sys.path)
        for name in saved:
            del sys.modules[name]
        sys.modules.update(self._modules)
        sys.modules["reaper_python"] = self.module
        try:
            yield
        finally:
            self._modules = {name: mod for name, mod in list(sys.modules.items()) if ours(name)}
            for name in self._modules:
                del sys.modules[name]
            sys.modules.update(saved)
            self._session_path = [p for p in sys.path if p not in saved_path]
            sys.path[:] = saved_path

    def run_script(self, path: str | Path) -> Instance | None:
        """Run a ReaScript file as REAPER's "Run" does, in the shared __main__ namespace; returns its instance (its
        defer loop keeps running through `run_until`/`step`). When an instance of the same script still runs, REAPER
        asks (ReaScript task control): `task_control` "new instance" runs it anyway, "terminate instances" stops the
        running ones (their atexit code runs) and does not start it, "abort" does nothing."""
        path = Path(path)
        running = [i for i in self.instances() if i.path == path]
        if running:
            self.task_control_asked.append(path.name)
            if self.task_control == "abort":
                return None
            if self.task_control == "terminate instances":
                for instance in running:
                    self._terminate(instance)
                return None
            assert self.task_control == "new instance", self.task_control
        code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
        instance = Instance(next(self._instances), path)
        self._execute(instance, code)
        self._finish_if_idle(instance)
        return instance

    def _execute(self, instance: Instance, code) -> bool:
        with self.interpreter():
            sys.path[:0] = getattr(self, "_session_path", [])
            previous, self._current = self._current, instance
            try:
                exec(code, self.main)
                return True
            except Exception:
                self.errors.append(traceback.format_exc())
                return False
            finally:
                self._current = previous

    def _defer(self, code_text) -> None:
        self._deferred.append((self._current, str(code_text)))

    def _at_exit(self, code_text) -> None:
        self._atexit.setdefault(self._current.number, []).append(str(code_text))

    def _finish_if_idle(self, instance: Instance) -> None:
        """A script whose defer chain ended is finished: REAPER runs its atexit code."""
        if any(i is instance for i, _ in self._deferred):
            return
        for code_text in self._atexit.pop(instance.number, []):
            self._execute(instance, code_text)

    def _terminate(self, instance: Instance) -> None:
        self._deferred = [(i, t) for i, t in self._deferred if i is not instance]
        self._finish_if_idle(instance)

    def instances(self) -> list[Instance]:
        """The script instances still running (a deferred call pending)."""
        return list({id(i): i for i, _ in self._deferred}.values())

    def running(self) -> int:
        """How many scripts still have a deferred call pending."""
        return len(self.instances())

    def step(self) -> None:
        """One defer cycle: run every call deferred during the previous cycle (REAPER does ~30 cycles a second)."""
        batch, self._deferred = self._deferred, []
        for instance, code_text in batch:
            if not self._execute(instance, code_text):
                self._deferred = [(i, t) for i, t in self._deferred if i is not instance]
        for instance in {id(i): i for i, _ in batch}.values():
            self._finish_if_idle(instance)

    def run_until(self, condition=None, timeout: float = 30.0, interval: float = 0.005) -> None:
        """Run defer cycles until `condition()` holds (default: no script running); TimeoutError past `timeout` s
        of wall-clock time (the engine runs in real time)."""
        condition = condition or (lambda: self.running() == 0)
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"still waiting after {timeout} s; console:\n{self.console_text()}")
            self.step()
            time.sleep(interval)

    def terminate_all(self) -> None:
        """What REAPER does when the user terminates the running scripts: drop their deferred calls, run atexit."""
        for instance in self.instances():
            self._terminate(instance)

    def module_named(self, name: str) -> types.ModuleType | None:
        """A module of this session's interpreter (e.g. "ddsp_reaper.runs"), as the scripts loaded it."""
        return self._modules.get(name)

    def console_text(self) -> str:
        return "".join(self.console)

    # ------------------------------------------------------------------------------------------ reaper_python

    def _build_module(self) -> types.ModuleType:
        module = types.ModuleType("reaper_python")
        module.__doc__ = "REAPER host simulator (tests/reaper_sim.py)"
        for name, impl in inspect.getmembers(self, predicate=inspect.ismethod):
            if name.startswith("api_"):
                api_name = name[4:]
                setattr(module, "RPR_" + api_name, self._wrap(api_name, impl))
        return module

    def _wrap(self, name: str, impl):
        signature = SIGNATURES.get(name)
        if signature is None:
            raise SimError(f"RPR_{name} is not in the REAPER API signature list")
        n_params = len(inspect.signature(impl).parameters)
        if n_params != len(signature.params):
            raise SimError(f"simulator RPR_{name} takes {n_params} parameters, REAPER's takes "
                           f"{len(signature.params)}")
        sim = self

        def call(*args):
            if len(args) != len(signature.params):
                raise TypeError(f"RPR_{name}() takes {len(signature.params)} positional arguments but "
                                f"{len(args)} were given")
            converted = []
            buffers = 0
            for (ctype, pname), value in zip(signature.params, args):
                where = f"RPR_{name}({pname})"
                if is_object_pointer(ctype):
                    converted.append(sim._resolve(ctype, value))
                elif ctype in ("const char*", "char*"):
                    text = "" if value is None else str(value)
                    if ctype == "char*":  # rpr_packs: create_string_buffer(text.encode(), 4 MiB)
                        size = len(text.encode())
                        if size > sim.max_strbuf:
                            raise ValueError("byte string too long")
                        sim.longest_string = max(sim.longest_string, size)
                        buffers += 1
                    converted.append(text)
                else:
                    converted.append(_convert_in(ctype, value, where))
            sim.calls.append(name)
            sim.call_counts[name] += 1
            if buffers:
                sim.string_calls[name] += 1
                sim.zeroed_bytes += buffers * MAX_STRBUF
            result = impl(*converted)
            outs = signature.outs
            if outs:
                retval, filled = result
            else:
                retval, filled = result, {}
            retval = sim._convert_return(signature.returns, retval)
            if not outs:
                return retval
            values = []
            for i, ((ctype, pname), value) in enumerate(zip(signature.params, args)):
                if i in outs:
                    values.append(_convert_out(ctype, filled[pname]) if pname in filled else
                                  _convert_out(ctype, converted[i] if ctype == "char*" else value))
                else:
                    values.append(value)
            return tuple(values) if signature.returns == "void" else (retval, *values)

        call.__name__ = "RPR_" + name
        call.signature = signature
        return call

    def _convert_return(self, returns: str, value):
        if returns == "void":
            return None
        if returns == "bool":
            return int(bool(value))
        if returns == "int":
            return int(value)
        if returns == "double":
            return float(value)
        if returns == "const char*":
            return str(value)
        if returns.endswith("*"):
            return value.ptr if isinstance(value, Obj) and value.alive else null(returns)
        return value

    # ---- console, undo, UI

    def api_ShowConsoleMsg(self, msg):
        self.console.append(msg)

    def api_ShowMessageBox(self, msg, title, type):
        self.console.append(f"[message box: {title}] {msg}\n")
        return 1

    def api_GetUserInputs(self, title, num_inputs, captions_csv, retvals_csv, retvals_csv_sz):
        if not self.user_inputs:
            raise SimError(f"GetUserInputs({title!r}) called but the test gave no answer")
        answer = self.user_inputs.pop(0)
        if answer is None:
            return False, {"retvals_csv": retvals_csv}
        return True, {"retvals_csv": answer}

    def api_Undo_BeginBlock2(self, proj):
        self._undo_depth += 1

    def api_Undo_EndBlock2(self, proj, descchange, extraflags):
        self._undo_depth -= 1
        self.undo.append(descchange)
        self.changed()

    def api_PreventUIRefresh(self, prevent_count):
        pass

    def api_UpdateArrange(self):
        pass

    def api_TrackList_AdjustWindows(self, isMinor):
        pass  # recorded in `calls`: new envelope lanes show after it (GetSetEnvelopeInfo_String's documentation)

    def api_Main_OnCommand(self, command, flag):
        self.commands.append(command)

    def api_GetResourcePath(self):
        return self.resource_path

    def api_GetProjectPath(self, bufOut, bufOut_sz):
        return None, {"bufOut": self.project.path}

    def api_EnumProjects(self, idx, projfnOutOptional, projfnOutOptional_sz):
        project = self.project if idx == -1 else (self.projects[idx] if 0 <= idx < len(self.projects) else None)
        return project, {"projfnOutOptional": project.file_name if project else ""}

    def api_GetProjectStateChangeCount(self, proj):
        return proj.state_count if proj else 0

    def api_ValidatePtr2(self, proj, pointer, ctypename):
        obj = self._objects.get(str(pointer))
        if not (obj and obj.alive and obj.ctype == ctypename):
            return False
        return obj.project is None or isinstance(obj, Project) or obj.project is proj

    def api_CountTempoTimeSigMarkers(self, proj):
        return len(self.project.tempo)

    def api_GetTempoTimeSigMarker(self, proj, ptidx, timeposOut, measureposOut, beatposOut, bpmOut, timesig_numOut,
                                  timesig_denomOut, lineartempoOut):
        segments = self.project._segments()
        if not 0 <= ptidx < len(segments):
            return False, {}
        qn, t, bpm = segments[ptidx]
        return True, {"timeposOut": t, "measureposOut": int(qn // 4), "beatposOut": qn % 4, "bpmOut": bpm,
                      "timesig_numOut": 4, "timesig_denomOut": 4, "lineartempoOut": False}

    def api_GetSetProjectInfo(self, project, desc, value, is_set):
        if is_set:
            raise SimError("the simulator does not set project info")
        if desc == "PROJECT_SRATE":
            return float(self.project.sample_rate or 0)
        if desc == "PROJECT_SRATE_USE":
            return 1.0 if self.project.sample_rate else 0.0
        raise SimError(f"GetSetProjectInfo({desc!r}) is not simulated")

    def api_GetAudioDeviceInfo(self, attribute, descOut, descOut_sz):
        if attribute == "SRATE" and self.device_rate:
            return True, {"descOut": str(self.device_rate)}
        return False, {"descOut": ""}

    # ---- ext state

    def api_GetExtState(self, section, key):
        return self.ext_state.get((section, key), "")

    def api_SetExtState(self, section, key, value, persist):
        self.ext_state[(section, key)] = value

    def api_GetProjExtState(self, proj, extname, key, valOutNeedBig, valOutNeedBig_sz):
        value = proj.ext.get((extname, key), "") if proj else ""
        return len(value), {"valOutNeedBig": value}

    def api_SetProjExtState(self, proj, extname, key, value):
        if proj is None:
            return 0
        proj.ext[(extname, key)] = value
        self.changed()
        return 1

    # ---- tracks

    def api_CountTracks(self, projOptional):
        return len([t for t in self.project.tracks if t.alive])

    def api_GetTrack(self, proj, trackidx):
        tracks = [t for t in self.project.tracks if t.alive]
        return tracks[trackidx] if 0 <= trackidx < len(tracks) else None

    def api_CountSelectedTracks(self, proj):
        return len([t for t in self.project.tracks if t.alive and t.selected])

    def api_GetSelectedTrack(self, proj, seltrackidx):
        tracks = [t for t in self.project.tracks if t.alive and t.selected]
        return tracks[seltrackidx] if 0 <= seltrackidx < len(tracks) else None

    def api_InsertTrackAtIndex(self, idx, wantDefaults):
        tracks = [t for t in self.project.tracks if t.alive]
        track = Track(self, self.project)
        position = self.project.tracks.index(tracks[idx]) if idx < len(tracks) else len(self.project.tracks)
        self.project.tracks.insert(position, track)
        self.changed()

    def api_GetMediaTrackInfo_Value(self, tr, parmname):
        if tr is None:
            return 0.0
        if parmname == "IP_TRACKNUMBER":
            return float([t for t in self.project.tracks if t.alive].index(tr) + 1)
        raise SimError(f"GetMediaTrackInfo_Value({parmname!r}) is not simulated")

    def api_GetSetMediaTrackInfo_String(self, tr, parmname, stringNeedBig, setNewValue):
        if tr is None:
            return False, {"stringNeedBig": ""}
        if parmname == "P_NAME":
            if setNewValue:
                tr.name = stringNeedBig
                self.changed()
            return True, {"stringNeedBig": tr.name}
        if parmname == "GUID":
            return True, {"stringNeedBig": tr.guid}
        if parmname.startswith("P_EXT:"):
            key = parmname[6:]
            if setNewValue:
                tr.ext[key] = stringNeedBig
                self.changed()
                return True, {"stringNeedBig": stringNeedBig}
            return key in tr.ext, {"stringNeedBig": tr.ext.get(key, "")}
        raise SimError(f"GetSetMediaTrackInfo_String({parmname!r}) is not simulated")

    # ---- items and takes

    def api_CountMediaItems(self, proj):
        return len(self.project.items())

    def api_GetMediaItem(self, proj, itemidx):
        items = self.project.items()
        return items[itemidx] if 0 <= itemidx < len(items) else None

    def api_CountSelectedMediaItems(self, proj):
        return len([i for i in self.project.items() if i.selected])

    def api_GetSelectedMediaItem(self, proj, selitem):
        items = [i for i in self.project.items() if i.selected]
        return items[selitem] if 0 <= selitem < len(items) else None

    def api_CountTrackMediaItems(self, track):
        return len(track.sorted_items()) if track else 0

    def api_GetTrackMediaItem(self, tr, itemidx):
        items = tr.sorted_items() if tr else []
        return items[itemidx] if 0 <= itemidx < len(items) else None

    def api_GetMediaItem_Track(self, item):
        return item.track if item else None

    def api_GetActiveTake(self, item):
        return item.take if item else None

    def api_GetMediaItemTake_Item(self, take):
        return take.item if take else None

    def api_TakeIsMIDI(self, take):
        return bool(take and take.is_midi)

    def api_AddMediaItemToTrack(self, tr):
        if tr is None:
            return None
        item = Item(self, tr, 0.0, 0.0, beats=False)
        tr.items.append(item)
        self.changed()
        return item

    def api_AddTakeToMediaItem(self, item):
        if item is None:
            return None
        take = Take(self, item)
        item.takes.append(take)
        self.changed()
        return take

    def api_DeleteTrackMediaItem(self, tr, it):
        if tr is None or it is None or it.track is not tr:
            return False
        it.alive = False
        for take in it.takes:
            take.alive = False
        self.changed()
        return True

    def api_MoveMediaItemToTrack(self, item, desttr):
        if item is None or desttr is None:
            return False
        item.track.items.remove(item)
        item.track = desttr
        desttr.items.append(item)
        self.changed()
        return True

    def api_GetMediaItemInfo_Value(self, item, parmname):
        if item is None:
            return 0.0
        if parmname == "D_POSITION":
            return item.position
        if parmname == "D_LENGTH":
            return item.length
        if parmname in item.info:
            return item.info[parmname]
        raise SimError(f"GetMediaItemInfo_Value({parmname!r}) is not simulated")

    def api_SetMediaItemInfo_Value(self, item, parmname, newvalue):
        if item is None:
            return False
        if parmname == "D_POSITION":
            item.set_position(newvalue)
        elif parmname == "D_LENGTH":
            item.set_length(newvalue)
        elif parmname in item.info:
            item.info[parmname] = float(newvalue)
        else:
            raise SimError(f"SetMediaItemInfo_Value({parmname!r}) is not simulated")
        self.changed()
        return True

    def api_GetSetMediaItemInfo_String(self, item, parmname, stringNeedBig, setNewValue):
        if item is None:
            return False, {"stringNeedBig": ""}
        if parmname == "GUID":
            return True, {"stringNeedBig": item.guid}
        if parmname.startswith("P_EXT:"):
            key = parmname[6:]
            if setNewValue:
                item.ext[key] = stringNeedBig
                self.changed()
                return True, {"stringNeedBig": stringNeedBig}
            return key in item.ext, {"stringNeedBig": item.ext.get(key, "")}
        raise SimError(f"GetSetMediaItemInfo_String({parmname!r}) is not simulated")

    def api_GetMediaItemTakeInfo_Value(self, take, parmname):
        if take is None:
            return 0.0
        if parmname == "D_STARTOFFS":
            return take.start_offset
        if parmname == "D_PLAYRATE":
            return 1.0
        raise SimError(f"GetMediaItemTakeInfo_Value({parmname!r}) is not simulated")

    def api_GetSetMediaItemTakeInfo_String(self, tk, parmname, stringNeedBig, setNewValue):
        if tk is None:
            return False, {"stringNeedBig": ""}
        if parmname == "P_NAME":
            if setNewValue:
                tk.name = stringNeedBig
                self.changed()
            return True, {"stringNeedBig": tk.name}
        raise SimError(f"GetSetMediaItemTakeInfo_String({parmname!r}) is not simulated")

    def api_PCM_Source_CreateFromFile(self, filename):
        if not Path(filename).is_file():
            return None
        return Source(self, filename)

    def api_GetMediaItemTake_Source(self, take):
        return take.source if take else None

    def api_SetMediaItemTake_Source(self, take, source):
        if take is None or source is None:
            return False
        take.source = source
        take.notes = None
        self.changed()
        return True

    def api_PCM_Source_Destroy(self, src):
        if src is not None:
            if any(t.source is src for project in self.projects for i in project.items() for t in i.takes
                   if t.alive):
                raise SimError("PCM_Source_Destroy on a source still used by a take")
            src.alive = False

    def api_GetMediaSourceFileName(self, source, filenamebufOut, filenamebufOut_sz):
        return None, {"filenamebufOut": source.path if source else ""}

    # ---- MIDI

    def api_MIDI_CountEvts(self, take, notecntOut, ccevtcntOut, textsyxevtcntOut):
        if take is None or not take.is_midi:
            return 0, {"notecntOut": 0, "ccevtcntOut": 0, "textsyxevtcntOut": 0}
        return len(take.notes), {"notecntOut": len(take.notes), "ccevtcntOut": len(take.ccs), "textsyxevtcntOut": 0}

    def api_MIDI_GetNote(self, take, noteidx, selectedOut, mutedOut, startppqposOut, endppqposOut, chanOut,
                         pitchOut, velOut):
        notes = take.sorted_notes() if take is not None and take.is_midi else []
        if not 0 <= noteidx < len(notes):
            return False, {}
        n = notes[noteidx]
        return True, {"selectedOut": n.selected, "mutedOut": n.muted, "startppqposOut": n.start,
                      "endppqposOut": n.end, "chanOut": n.chan, "pitchOut": n.pitch, "velOut": n.vel}

    def api_MIDI_GetCC(self, take, ccidx, selectedOut, mutedOut, ppqposOut, chanmsgOut, chanOut, msg2Out, msg3Out):
        ccs = take.sorted_ccs() if take is not None and take.is_midi else []
        if not 0 <= ccidx < len(ccs):
            return False, {}
        c = ccs[ccidx]
        return True, {"selectedOut": c.selected, "mutedOut": c.muted, "ppqposOut": c.ppq, "chanmsgOut": c.chanmsg,
                      "chanOut": c.chan, "msg2Out": c.msg2, "msg3Out": c.msg3}

    def api_MIDI_GetCCShape(self, take, ccidx, shapeOut, beztensionOut):
        ccs = take.sorted_ccs() if take is not None and take.is_midi else []
        if not 0 <= ccidx < len(ccs):
            return False, {}
        return True, {"shapeOut": ccs[ccidx].shape, "beztensionOut": ccs[ccidx].beztension}

    def api_MIDI_GetProjTimeFromPPQPos(self, take, ppqpos):
        if take is None:
            return 0.0
        item = take.item
        source_start_qn = self.project.qn_at(item.position - take.start_offset)
        return self.project.time_at(source_start_qn + ppqpos / PPQ)

    def api_MIDI_GetHash(self, take, notesonly, hashOut, hashOut_sz):
        if take is None or not take.is_midi:
            return False, {"hashOut": ""}
        text = repr([(n.start, n.end, n.pitch, n.vel, n.chan, n.muted) for n in take.sorted_notes()])
        if not notesonly:
            text += repr([(c.ppq, c.chanmsg, c.chan, c.msg2, c.msg3, c.shape, c.beztension, c.muted)
                          for c in take.sorted_ccs()])
        return True, {"hashOut": hashlib.sha1(text.encode()).hexdigest()[:max(0, hashOut_sz - 1)]}

    # ---- FX and envelopes

    def _load_jsfx(self, ident: str) -> FX | None:
        """'JS:dir/file.jsfx' -> an FX with one parameter per slider line of the file under Effects/."""
        path = Path(self.resource_path) / "Effects" / ident
        if not path.is_file():
            return None
        desc, params = ident, []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("desc:"):
                desc = line[5:].strip()
            match = re.match(r"slider(\d+):(?:\w+=)?([-\d.]+)<([-\d.]+),([-\d.]+)(?:,[-\d.]+)?[^>]*>(-?)(.*)", line)
            if match:
                params.append(Param(match.group(6).strip(), float(match.group(2)), float(match.group(3)),
                                    float(match.group(4))))
        params += [Param("Bypass", 0.0, 0.0, 1.0), Param("Wet", 1.0, 0.0, 1.0)]
        return FX(f"JS: {desc}", ident, params)

    def api_TrackFX_GetCount(self, track):
        return len(track.fx) if track else 0

    def api_TrackFX_GetFXName(self, track, fx, bufOut, bufOut_sz):
        if track is None or not 0 <= fx < len(track.fx):
            return False, {"bufOut": ""}
        return True, {"bufOut": track.fx[fx].name[:bufOut_sz - 1]}

    def api_TrackFX_GetNamedConfigParm(self, track, fx, parmname, bufOutNeedBig, bufOutNeedBig_sz):
        """Only "fx_ident" (REAPER 6.37+): what the effect is, whatever it is renamed to (for a JS effect the sim
        gives its path under Effects/, e.g. "ddsp/ddsp_expression.jsfx")."""
        if track is None or not 0 <= fx < len(track.fx) or parmname != "fx_ident":
            return False, {"bufOutNeedBig": ""}
        return True, {"bufOutNeedBig": track.fx[fx].ident[:bufOutNeedBig_sz - 1]}

    def api_TrackFX_AddByName(self, track, fxname, recFX, instantiate):
        if track is None or recFX:
            return -1
        ident = fxname[3:].strip() if fxname.startswith("JS:") else None
        existing = [i for i, fx in enumerate(track.fx) if fx.ident == ident]
        if instantiate == 0 or (instantiate > 0 and existing):
            return existing[0] if existing else -1
        fx = self._load_jsfx(ident) if ident else None
        if fx is None:
            return -1
        track.fx.append(fx)
        self.changed()
        return len(track.fx) - 1

    def api_TrackFX_GetNumParams(self, track, fx):
        return len(track.fx[fx].params) if track and 0 <= fx < len(track.fx) else 0

    def api_TrackFX_GetParamName(self, track, fx, param, bufOut, bufOut_sz):
        if track is None or not 0 <= fx < len(track.fx) or not 0 <= param < len(track.fx[fx].params):
            return False, {"bufOut": ""}
        return True, {"bufOut": track.fx[fx].params[param].name[:bufOut_sz - 1]}

    def api_GetFXEnvelope(self, track, fxindex, parameterindex, create):
        if track is None or not 0 <= fxindex < len(track.fx):
            return None
        fx = track.fx[fxindex]
        if not 0 <= parameterindex < len(fx.params):
            return None
        if parameterindex not in fx.envelopes:
            if not create:
                return None
            fx.envelopes[parameterindex] = Envelope(self, track, fx, parameterindex)
            self.changed()
        return fx.envelopes[parameterindex]

    def api_GetSetEnvelopeInfo_String(self, env, parmname, stringNeedBig, setNewValue):
        if env is None or parmname not in ("ACTIVE", "VISIBLE", "SHOWLANE", "ARM"):
            return False, {"stringNeedBig": ""}
        if setNewValue:
            env.info[parmname] = stringNeedBig
        return True, {"stringNeedBig": env.info.get(parmname, "0")}

    def api_GetEnvelopeStateChunk(self, env, strNeedBig, strNeedBig_sz, isundoOptional):
        if env is None:
            return False, {"strNeedBig": ""}
        lines = [f"<PARMENV {env.param} 0 1 0.5", "ACT 1 -1", f"VIS {env.info.get('VISIBLE', '0')} 1 1"]
        lines += [f"PT {pt.time!r} {pt.value!r} {pt.shape}" + (" 0 1" if pt.selected else "") for pt in env.points]
        return True, {"strNeedBig": "\n".join(lines + [">"])[:strNeedBig_sz - 1]}

    def api_CountEnvelopePoints(self, envelope):
        return len(envelope.points) if envelope else 0

    def api_GetEnvelopePoint(self, envelope, ptidx, timeOut, valueOut, shapeOut, tensionOut, selectedOut):
        if envelope is None or not 0 <= ptidx < len(envelope.points):
            return False, {}
        p = envelope.points[ptidx]
        return True, {"timeOut": p.time, "valueOut": p.value, "shapeOut": p.shape, "tensionOut": p.tension,
                      "selectedOut": p.selected}

    def api_InsertEnvelopePoint(self, envelope, time, value, shape, tension, selected, noSortInOptional):
        if envelope is None:
            return False, {}
        envelope.points.append(Point(float(time), float(value), int(shape), float(tension), bool(selected)))
        if not noSortInOptional:
            envelope.points.sort(key=lambda p: p.time)
        self.changed()
        return True, {}

    def api_Envelope_SortPoints(self, envelope):
        if envelope is None:
            return False
        envelope.points.sort(key=lambda p: p.time)
        return True

    def api_DeleteEnvelopePointRange(self, envelope, time_start, time_end):
        if envelope is None:
            return False
        envelope.points = [p for p in envelope.points if not time_start <= p.time < time_end]
        self.changed()
        return True

    def api_Envelope_Evaluate(self, envelope, time, samplerate, samplesRequested, valueOut, dVdSOut, ddVdSOut,
                              dddVdSOut):
        if envelope is None:
            return 0, {"valueOut": 0.0, "dVdSOut": 0.0, "ddVdSOut": 0.0, "dddVdSOut": 0.0}
        return 1, {"valueOut": envelope.evaluate(time), "dVdSOut": 0.0, "ddVdSOut": 0.0, "dddVdSOut": 0.0}

    # ---- helpers for tests (not part of the API)

    def lanes(self, track: Track) -> dict[str, Envelope]:
        """The DDSP expression lanes of a track by control name."""
        for fx in track.fx:
            if "ddsp_expression" in fx.ident:
                return {fx.params[i].name: env for i, env in fx.envelopes.items()}
        return {}

    def set_point(self, envelope: Envelope, time: float, value: float) -> None:
        """Change the value of the point at `time` (what dragging it vertically does)."""
        matches = [p for p in envelope.points if abs(p.time - time) < 1e-9]
        if not matches:
            raise KeyError(f"no point at {time}")
        matches[0].value = value
        self.changed(envelope.project)
