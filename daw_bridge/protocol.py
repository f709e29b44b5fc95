"""The engine's OSC protocol (docs/protocol.md), as pure functions and poll-loop state machines. No sockets, no
threads, no blocking, standard library only: it runs inside REAPER's and Ableton Live's embedded Python.

- Message tables: `REQUESTS` (client -> engine) and `REPLIES` (engine -> client), each address -> its fixed fields
  (name, OSC type tag), plus a repeated record for note and control chunks.
- `encode(address, *values, records=(), reply_port=None)` / `parse(message, table)`: one implementation of the
  argument rules for both sides (the engine uses them too).
- `RenderSession`, `Query`, `PresetsQuery`: one request each, driven by `poll(now) -> datagrams to send` and
  `handle(message, now)`; `Bridge` routes a socket's datagrams to them by request id.

A poll loop (REAPER `defer`, Live's tick) does, each tick:

    for data in drain_socket(sock): bridge.handle_datagram(data, now)
    for data in bridge.poll(now): sock.sendto(data, (host, port))
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, Tuple

from .osc import Message, OSCError, decode_packet, encode_message

PROTOCOL_VERSION = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9718
MAX_DATAGRAM = 4096  # bytes; every datagram either side sends fits, well under python-osc's and macOS's limits

CONTROL_NAMES = ("volume", "volume_fluctuation", "volume_peak_position", "vibrato", "brightness", "attack_noise")
GENERATE = -1.0  # a control value meaning "let the engine's expression generator choose"

MAX_NOTES = 100_000
MAX_CHUNKS = 10_000
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 200
MAX_FETCH = 32
MAX_SECONDS = 3660.0
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 16000, 96000

# Error codes of /ddsp/error.
MALFORMED = "malformed"
UNKNOWN_ADDRESS = "unknown_address"
BAD_ARGUMENTS = "bad_arguments"
VERSION = "version"
UNKNOWN_PRESET = "unknown_preset"
BAD_NOTES = "bad_notes"
TOO_LARGE = "too_large"
UNKNOWN_REQUEST = "unknown_request"
DUPLICATE_REQUEST = "duplicate_request"
BUSY = "busy"
EXPIRED = "expired"
CANCELLED = "cancelled"
SUPERSEDED = "superseded"
BAD_FILE_NAME = "bad_file_name"
RENDER_FAILED = "render_failed"
SHUTTING_DOWN = "shutting_down"
INTERNAL = "internal"
# Raised on the client side only (never sent by the engine).
NO_ENGINE = "no_engine"
ENGINE_LOST = "engine_lost"
TIMEOUT = "timeout"

HELLO, WELCOME = "/ddsp/hello", "/ddsp/welcome"
PING, PONG = "/ddsp/ping", "/ddsp/pong"
PRESETS, PRESET_COUNT, PRESET = "/ddsp/presets", "/ddsp/presets/count", "/ddsp/preset"
LOAD, LOADED = "/ddsp/load", "/ddsp/loaded"
RENDER, NOTES, STATUS, FETCH, CANCEL = "/ddsp/render", "/ddsp/notes", "/ddsp/status", "/ddsp/fetch", "/ddsp/cancel"
CURVES = "/ddsp/curves"
ACK, QUEUED, PROGRESS, DONE = "/ddsp/ack", "/ddsp/queued", "/ddsp/progress", "/ddsp/done"
CONTROLS, WARNING, ERROR = "/ddsp/controls", "/ddsp/warning", "/ddsp/error"

Fields = Tuple[Tuple[str, str], ...]  # typing.Tuple: this module also runs in older embedded Pythons
CONTROL_FIELDS: Fields = tuple((name, "f") for name in CONTROL_NAMES)
NOTE_RECORD: Fields = (("id", "s"), ("pitch", "i"), ("onset", "d"), ("offset", "d"), ("velocity", "i")) + CONTROL_FIELDS
CONTROL_RECORD: Fields = (("id", "s"), ("rerendered", "i")) + CONTROL_FIELDS
CURVE_RECORD: Fields = (("t", "d"), ("value", "d"))


@dataclass(frozen=True)
class Spec:
    fields: Fields
    record: Fields = ()


REQUESTS: dict[str, Spec] = {
    HELLO: Spec((("req", "i"), ("protocol", "i"), ("client", "s"))),
    PING: Spec((("req", "i"),)),
    PRESETS: Spec((("req", "i"),)),
    LOAD: Spec((("req", "i"), ("preset", "s"))),
    RENDER: Spec((("req", "i"), ("clip", "s"), ("preset", "s"), ("sample_rate", "i"), ("n_notes", "i"),
                  ("n_chunks", "i"), ("length", "d"), ("seed", "i"), ("file_name", "s"))),
    NOTES: Spec((("req", "i"), ("chunk", "i")), NOTE_RECORD),
    CURVES: Spec((("req", "i"), ("chunk", "i"), ("id", "s"), ("curve", "s")), CURVE_RECORD),
    STATUS: Spec((("req", "i"),)),
    FETCH: Spec((("req", "i"), ("first", "i"), ("count", "i"))),
    CANCEL: Spec((("req", "i"),)),
}

REPLIES: dict[str, Spec] = {
    WELCOME: Spec((("req", "i"), ("protocol", "i"), ("engine_version", "s"), ("engine_id", "s"),
                   ("max_datagram", "i"))),
    PONG: Spec((("req", "i"), ("engine_id", "s"), ("queued", "i"), ("running", "i"), ("uptime", "d"))),
    PRESET_COUNT: Spec((("req", "i"), ("count", "i"))),
    PRESET: Spec((("req", "i"), ("index", "i"), ("name", "s"), ("kind", "s"), ("instrument", "s"), ("program", "i"),
                  ("loaded", "i"), ("description", "s"))),
    LOADED: Spec((("req", "i"), ("preset", "s"))),
    ACK: Spec((("req", "i"), ("chunk", "i"))),
    QUEUED: Spec((("req", "i"), ("ahead", "i"))),
    PROGRESS: Spec((("req", "i"), ("fraction", "f"))),
    DONE: Spec((("req", "i"), ("path", "s"), ("duration", "d"), ("sample_rate", "i"), ("n_notes", "i"),
                ("n_chunks", "i"), ("n_rerendered", "i"), ("mode", "s"), ("render_seconds", "d"))),
    CONTROLS: Spec((("req", "i"), ("chunk", "i"), ("n_chunks", "i")), CONTROL_RECORD),
    WARNING: Spec((("req", "i"), ("message", "s"))),
    ERROR: Spec((("req", "i"), ("code", "s"), ("message", "s"))),
}

INT_TAGS, REAL_TAGS, STRING_TAGS = "ih", "ihfd", "sS"


class ProtocolError(Exception):
    """A message the protocol refuses: `code` is one of the error codes, `req` the request id when known (else 0)."""

    def __init__(self, code: str, message: str, req: int = 0, reply_port: int | None = None):
        super().__init__(message)
        self.code, self.req, self.reply_port = code, req, reply_port


@dataclass
class Parsed:
    address: str
    fields: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    reply_port: int | None = None

    @property
    def req(self) -> int:
        return self.fields["req"]


def check_sample_rate(sample_rate: int) -> None:
    """ValueError unless `sample_rate` is a rate the engine renders at: an integer from MIN_SAMPLE_RATE to
    MAX_SAMPLE_RATE Hz."""
    if not isinstance(sample_rate, int) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample rate {sample_rate!r} is not supported: use an integer rate from "
                         f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")


# ---------------------------------------------------------------------------------------------------- encoding


def encode(address: str, *values: Any, records: Iterable[Sequence[Any]] = (), reply_port: int | None = None,
           table: dict[str, Spec] | None = None) -> bytes:
    """One message of the protocol: fixed field values in table order, then the records (tuples in record order),
    then the optional reply port (requests only)."""
    spec = (table or (REQUESTS if address in REQUESTS else REPLIES))[address]
    if len(values) != len(spec.fields):
        raise ValueError(f"{address} takes {len(spec.fields)} values, got {len(values)}")
    types = "".join(tag for _, tag in spec.fields)
    args = list(values)
    record_tags = "".join(tag for _, tag in spec.record)
    for record in records:
        types += record_tags
        args.extend(record)
    if reply_port is not None:
        types += "i"
        args.append(reply_port)
    return encode_message(address, args, types)


def record_size(record: Sequence[Any], record_spec: Fields) -> int:
    """Bytes one record adds to a message: type tags plus data."""
    size = len(record_spec)
    for value, (_, tag) in zip(record, record_spec):
        size += {"i": 4, "f": 4, "d": 8}.get(tag) or (len(str(value).encode("utf-8")) // 4 + 1) * 4
    return size


def chunk_records(records: Sequence[Sequence[Any]], record_spec: Fields, fixed_size: int = 128,
                  limit: int = MAX_DATAGRAM) -> list[list[Sequence[Any]]]:
    """Split records into consecutive chunks whose messages stay within `limit` bytes (`fixed_size` covers the
    address, the fixed fields and the reply port). Every chunk holds at least one record."""
    chunks: list[list[Sequence[Any]]] = [[]]
    used = fixed_size
    for record in records:
        size = record_size(record, record_spec)
        if chunks[-1] and used + size > limit:
            chunks.append([])
            used = fixed_size
        chunks[-1].append(record)
        used += size
    return chunks if chunks[0] else []


def note_record(note: Any) -> tuple:
    """A note (dict with id, pitch, onset, offset, velocity=100, controls=None) -> NOTE_RECORD tuple. `controls` is
    None (engine generates), six values in CONTROL_NAMES order, or a dict by control name."""
    controls = note.get("controls")
    if controls is None:
        values = (GENERATE,) * 6
    elif isinstance(controls, dict):
        values = tuple(float(controls[name]) for name in CONTROL_NAMES)
    else:
        values = tuple(float(v) for v in controls)
    if len(values) != 6:
        raise ValueError(f"note {note.get('id')!r}: expected 6 controls, got {len(values)}")
    return (str(note["id"]), int(note["pitch"]), float(note["onset"]), float(note["offset"]),
            int(note.get("velocity", 100))) + values


def note_chunks(req: int, notes: Sequence[dict], reply_port: int | None = None) -> list[bytes]:
    """Encoded /ddsp/notes datagrams carrying `notes`, in order."""
    records = [note_record(n) for n in notes]
    return [encode(NOTES, req, index, records=chunk, reply_port=reply_port)
            for index, chunk in enumerate(chunk_records(records, NOTE_RECORD))]


def curve_chunks(req: int, notes: Sequence[dict], first_chunk: int, reply_port: int | None = None) -> list[bytes]:
    """Encoded /ddsp/curves datagrams carrying the notes' curves ({"cents": [[t, v], ...], ...}), chunk indices
    from `first_chunk` on; a long curve spans several chunks, its points in chunk order."""
    out = []
    for note in notes:
        note_id = str(note["id"])
        for name, points in (note.get("curves") or {}).items():
            fixed = 64 + len(note_id.encode("utf-8")) + len(str(name).encode("utf-8"))
            for chunk in chunk_records([(float(t), float(v)) for t, v in points], CURVE_RECORD, fixed):
                out.append(encode(CURVES, req, first_chunk + len(out), note_id, str(name), records=chunk,
                                  reply_port=reply_port))
    return out


def control_chunks(req: int, rows: Sequence[tuple]) -> list[bytes]:
    """Rows (id, rerendered 0/1, six controls) -> encoded /ddsp/controls datagrams."""
    chunks = chunk_records(rows, CONTROL_RECORD)
    return [encode(CONTROLS, req, index, len(chunks), records=chunk) for index, chunk in enumerate(chunks)]


# ---------------------------------------------------------------------------------------------------- parsing

def _convert(value: Any, tag: str, got: str, name: str) -> Any:
    if tag == "i":
        if got not in INT_TAGS:
            raise TypeError(f"{name} must be an integer (i or h), got type {got!r}")
        return int(value)
    if tag in "fd":
        if got not in REAL_TAGS:
            raise TypeError(f"{name} must be a number (i, h, f or d), got type {got!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        return value
    if got not in STRING_TAGS:
        raise TypeError(f"{name} must be a string (s), got type {got!r}")
    return value


def parse(message: Message, table: dict[str, Spec], allow_reply_port: bool | None = None) -> Parsed:
    """Check a decoded message against the table; raises ProtocolError (UNKNOWN_ADDRESS or BAD_ARGUMENTS).

    Integer fields accept tags i/h, number fields i/h/f/d, strings s/S. A request may end with one extra integer,
    the reply port."""
    req = message.args[0] if message.args and message.types[:1] in ("i", "h") else 0
    req = req if isinstance(req, int) and -2 ** 31 <= req < 2 ** 31 else 0
    spec = table.get(message.address)
    if spec is None:
        raise ProtocolError(UNKNOWN_ADDRESS, f"unknown address {message.address[:80]!r}", req)
    if allow_reply_port is None:
        allow_reply_port = table is REQUESTS
    n_fixed, n_record = len(spec.fields), len(spec.record)
    extra = len(message.args) - n_fixed
    reply_port = None
    has_port = allow_reply_port and extra >= 1 and (extra % n_record == 1 if n_record else extra == 1)
    if extra < 0 or (not has_port and (extra % n_record if n_record else extra)):
        record_text = f" + {n_record} per record" if n_record else ""
        raise ProtocolError(BAD_ARGUMENTS, f"{message.address} takes {n_fixed}{record_text} arguments"
                            f"{' (+1 reply port)' if allow_reply_port else ''}, got {len(message.args)}", req)
    args, types = list(message.args), message.types
    if has_port:
        port, tag, types = args.pop(), types[-1], types[:-1]
        if tag in INT_TAGS and 1 <= port <= 65535:
            reply_port = port
        else:
            raise ProtocolError(BAD_ARGUMENTS, f"{message.address}: reply port {port!r} is not an integer in "
                                               f"1..65535", req)
    try:
        fields = {name: _convert(args[i], tag, types[i], name) for i, (name, tag) in enumerate(spec.fields)}
        records = []
        for start in range(n_fixed, len(args), n_record or 1):
            records.append({name: _convert(args[start + j], tag, types[start + j], name)
                            for j, (name, tag) in enumerate(spec.record)})
    except (TypeError, ValueError) as error:
        raise ProtocolError(BAD_ARGUMENTS, f"{message.address}: {error}", req, reply_port) from None
    return Parsed(message.address, fields, records, reply_port)


def decode(data: bytes, table: dict[str, Spec]) -> list[Parsed | ProtocolError]:
    """A datagram -> one entry per message in it: Parsed, or the ProtocolError it raised (MALFORMED for bytes that
    are not OSC at all)."""
    try:
        messages = decode_packet(data)
    except OSCError as error:
        return [ProtocolError(MALFORMED, f"not an OSC packet: {error}")]
    if not messages:
        return [ProtocolError(MALFORMED, "an empty bundle: no request in it")]
    out: list[Parsed | ProtocolError] = []
    for message in messages:
        try:
            out.append(parse(message, table))
        except ProtocolError as error:
            out.append(error)
    return out


def controls_tuple(record: dict) -> tuple[float, ...] | None:
    """The six controls of a parsed note or control record; None when all six say GENERATE."""
    values = tuple(record[name] for name in CONTROL_NAMES)
    return None if all(v == GENERATE for v in values) else values


# ---------------------------------------------------------------------------------------------------- sessions

@dataclass
class Timing:
    """Client retry policy (seconds). Defaults suit 127.0.0.1; every value is documented in docs/protocol.md."""
    resend: float = 0.25  # re-send an unanswered header, chunk, fetch or query after this long
    window: int = 32  # note chunks in flight at once (32 x 4 KiB stays inside a default socket buffer)
    fetch_window: int = 16  # control chunks asked for at once
    connect_timeout: float = 5.0  # nothing at all heard from the engine for a request: NO_ENGINE
    status_after: float = 1.0  # engine silent this long while a request is open: send /ddsp/status
    lost_after: float = 5.0  # engine silent this long after it answered once: ENGINE_LOST


@dataclass
class RenderOutcome:
    path: str
    duration: float
    sample_rate: int
    mode: str  # "full" or "incremental"
    render_seconds: float
    controls: dict[str, tuple[float, ...]]  # note id -> six controls used
    rerendered: list[str]  # ids of the notes whose audio was (re)made
    warnings: list[str] = field(default_factory=list)  # repairs the engine made to the notes


class Request:
    """Base of the session objects: a request id, a state, an error, a listener called on every change."""

    def __init__(self, req: int, timing: Timing | None, listener: Callable[["Request", str], None] | None):
        self.req = req
        self.timing = timing or Timing()
        self.listener = listener
        self.state = "new"
        self.error: tuple[str, str] | None = None
        self.started: float | None = None
        self.last_heard: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def _notify(self, event: str) -> None:
        if self.listener:
            self.listener(self, event)

    def fail(self, code: str, message: str) -> None:
        if not self.finished:
            self.state, self.error = "failed", (code, message)
            self._notify("failed")

    def _silent_too_long(self, now: float) -> bool:
        """Fails the request when the engine never answered or went quiet; True when it did."""
        if self.last_heard is None:
            if now - self.started > self.timing.connect_timeout:
                self.fail(NO_ENGINE, f"no engine answered within {self.timing.connect_timeout:g} s "
                                     f"(is `python -m engine serve` running?)")
        elif now - self.last_heard > self.timing.lost_after:
            self.fail(ENGINE_LOST, f"the engine stopped answering for {self.timing.lost_after:g} s "
                                   f"(killed or restarted?)")
        return self.finished

    def poll(self, now: float) -> list[bytes]:
        raise NotImplementedError

    def handle(self, parsed: Parsed, now: float) -> None:
        raise NotImplementedError


class Query(Request):
    """A one-datagram request answered by one reply (hello, ping, load): re-sent until answered."""

    def __init__(self, req: int, address: str, values: Sequence[Any], expect: str, reply_port: int | None = None,
                 timing: Timing | None = None, listener=None):
        super().__init__(req, timing, listener)
        self.datagram = encode(address, req, *values, reply_port=reply_port)
        self.expect = expect
        self.sent_at: float | None = None
        self.result: dict[str, Any] | None = None

    def poll(self, now: float) -> list[bytes]:
        if self.started is None:
            self.started = now
        if self.finished or self._silent_too_long(now):
            return []
        if self.sent_at is None or now - self.sent_at >= self.timing.resend:
            self.sent_at, self.state = now, "sent"
            return [self.datagram]
        return []

    def handle(self, parsed: Parsed, now: float) -> None:
        self.last_heard = now
        if parsed.address == ERROR:
            self.fail(parsed.fields["code"], parsed.fields["message"])
        elif parsed.address == self.expect and not self.finished:
            self.result, self.state = parsed.fields, "done"
            self._notify("done")


class PresetsQuery(Query):
    """/ddsp/presets: a count, then one /ddsp/preset per preset; `result` is the list of preset dicts."""

    def __init__(self, req: int, reply_port: int | None = None, timing: Timing | None = None, listener=None):
        super().__init__(req, PRESETS, (), PRESET_COUNT, reply_port, timing, listener)
        self.count: int | None = None
        self.items: dict[int, dict] = {}

    def handle(self, parsed: Parsed, now: float) -> None:
        self.last_heard = now
        if parsed.address == ERROR:
            self.fail(parsed.fields["code"], parsed.fields["message"])
            return
        if parsed.address == PRESET_COUNT:
            self.count = parsed.fields["count"]
        elif parsed.address == PRESET:
            self.items[parsed.fields["index"]] = {k: v for k, v in parsed.fields.items() if k not in ("req", "index")}
        if self.count is not None and len(self.items) >= self.count and not self.finished:
            self.result, self.state = [self.items[i] for i in sorted(self.items)][:self.count], "done"
            self._notify("done")


class RenderSession(Request):
    """One render: header, note chunks (windowed, each re-sent until acknowledged), wait (status polls when the
    engine is quiet), then fetch the control chunks. States: new -> connecting -> uploading -> waiting ->
    queued -> rendering -> fetching -> done, or failed (see `error`). Events to the listener: "uploading",
    "queued", "progress", "warning", "fetching", "done", "failed"."""

    def __init__(self, req: int, clip_id: str, preset: str, notes: Sequence[dict], sample_rate: int = 48000,
                 length: float = 0.0, seed: int = 0, file_name: str = "", reply_port: int | None = None,
                 timing: Timing | None = None, listener=None):
        super().__init__(req, timing, listener)
        self.chunks = note_chunks(req, notes, reply_port)
        if not self.chunks:
            raise ValueError("a render needs at least one note")
        self.chunks += curve_chunks(req, notes, len(self.chunks), reply_port)
        self.header = encode(RENDER, req, clip_id, preset, sample_rate, len(notes), len(self.chunks), float(length),
                             seed, file_name, reply_port=reply_port)
        self.reply_port = reply_port
        self.n_notes = len(notes)
        self.sent_at: dict[int, float] = {}  # chunk (-1: header) -> last sent
        self.acked: set[int] = set()
        self.last_status = -math.inf
        self.ahead: int | None = None
        self.progress = 0.0
        self.warnings: list[str] = []
        self.done_fields: dict[str, Any] | None = None
        self.control_parts: dict[int, list[dict]] = {}
        self.fetch_sent: dict[int, float] = {}
        self.result: RenderOutcome | None = None

    def _due(self, key: int, sent: dict[int, float], now: float) -> bool:
        return key not in sent or now - sent[key] >= self.timing.resend

    def poll(self, now: float) -> list[bytes]:
        if self.started is None:
            self.started, self.state = now, "connecting"
        if self.finished or self._silent_too_long(now):
            return []
        if self.state == "connecting":
            if self._due(-1, self.sent_at, now):
                self.sent_at[-1] = now
                return [self.header]
            return []
        if self.state == "uploading":
            return self._upload(now)
        if self.state == "fetching":
            return self._fetch(now)
        if now - (self.last_heard or now) >= self.timing.status_after and now - self.last_status >= self.timing.status_after:
            self.last_status = now
            return [encode(STATUS, self.req, reply_port=self.reply_port)]
        return []

    def _upload(self, now: float) -> list[bytes]:
        pending = [i for i in range(len(self.chunks)) if i not in self.acked]
        in_flight = sum(1 for i in pending if i in self.sent_at and now - self.sent_at[i] < self.timing.resend)
        out = []
        for i in pending:
            if len(out) + in_flight >= self.timing.window:
                break
            if self._due(i, self.sent_at, now):
                self.sent_at[i] = now
                out.append(self.chunks[i])
        return out

    def _fetch(self, now: float) -> list[bytes]:
        n_chunks = self.done_fields["n_chunks"]
        missing = [i for i in range(n_chunks) if i not in self.control_parts]
        asked = sum(1 for i in missing if i in self.fetch_sent and now - self.fetch_sent[i] < self.timing.resend)
        due = [i for i in missing if self._due(i, self.fetch_sent, now)][:max(0, self.timing.fetch_window - asked)]
        out = []
        for first, count in _runs(due):
            for i in range(first, first + count):
                self.fetch_sent[i] = now
            out.append(encode(FETCH, self.req, first, count, reply_port=self.reply_port))
        return out

    def handle(self, parsed: Parsed, now: float) -> None:
        if self.finished:
            return
        self.last_heard = now
        address, fields = parsed.address, parsed.fields
        if address == ERROR:
            self.fail(fields["code"], fields["message"])
        elif address == WARNING:
            self.warnings.append(fields["message"])
            self._notify("warning")
        elif address == ACK:
            self._on_ack(fields["chunk"])
        elif address in (QUEUED, PROGRESS) and self.state not in ("fetching",):
            self.acked.update(range(len(self.chunks)))
            before = (self.state, self.ahead, self.progress)
            if address == QUEUED:
                self.state, self.ahead = "queued", fields["ahead"]
            else:
                self.state, self.progress = "rendering", fields["fraction"]
            if (self.state, self.ahead, self.progress) != before:  # status replies repeat the latest message
                self._notify("queued" if address == QUEUED else "progress")
        elif address == DONE and self.done_fields is None:
            self.done_fields, self.state, self.progress = fields, "fetching", 1.0
            self._notify("fetching")
            self._maybe_finish()
        elif address == CONTROLS and self.done_fields is not None:
            self.control_parts.setdefault(fields["chunk"], parsed.records)
            self._maybe_finish()

    def _on_ack(self, chunk: int) -> None:
        if chunk == -1:
            if self.state == "connecting":
                self.state = "uploading"
                self._notify("uploading")
            return
        if 0 <= chunk < len(self.chunks):
            self.acked.add(chunk)
            if self.state == "uploading" and len(self.acked) == len(self.chunks):
                self.state = "waiting"

    def _maybe_finish(self) -> None:
        done = self.done_fields
        if len(self.control_parts) < done["n_chunks"]:
            return
        controls, rerendered = {}, []
        for i in sorted(self.control_parts):
            for record in self.control_parts[i]:
                controls[record["id"]] = tuple(record[name] for name in CONTROL_NAMES)
                if record["rerendered"]:
                    rerendered.append(record["id"])
        self.result = RenderOutcome(done["path"], done["duration"], done["sample_rate"], done["mode"],
                                    done["render_seconds"], controls, rerendered, list(self.warnings))
        self.state = "done"
        self._notify("done")

    def cancel_datagram(self) -> bytes:
        return encode(CANCEL, self.req, reply_port=self.reply_port)


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted indices -> (first, count) runs of consecutive ones, each at most MAX_FETCH long."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][0] + runs[-1][1] == i and runs[-1][1] < MAX_FETCH:
            runs[-1][1] += 1
        else:
            runs.append([i, 1])
    return [(first, count) for first, count in runs]


class Bridge:
    """All open requests of one client socket; routes replies by request id. Not thread-safe: call it from one
    thread (the DAW's poll loop).

    `reply_port`: set it when replies must go to a port other than the one the socket sends from."""

    def __init__(self, client_name: str = "daw_bridge", reply_port: int | None = None, timing: Timing | None = None):
        self.client_name = client_name
        self.reply_port = reply_port
        self.timing = timing or Timing()
        self.open: dict[int, Request] = {}
        self.outbox: list[bytes] = []
        self._next = random.randint(1, 2 ** 30)  # random start: a restarted client does not reuse live ids

    def next_id(self) -> int:
        self._next = self._next % (2 ** 31 - 1) + 1
        return self._next

    def _add(self, request: Request) -> Request:
        self.open[request.req] = request
        return request

    def hello(self, listener=None) -> Query:
        return self._add(Query(self.next_id(), HELLO, (PROTOCOL_VERSION, self.client_name), WELCOME,
                               self.reply_port, self.timing, listener))

    def ping(self, listener=None) -> Query:
        return self._add(Query(self.next_id(), PING, (), PONG, self.reply_port, self.timing, listener))

    def load(self, preset: str, listener=None) -> Query:
        return self._add(Query(self.next_id(), LOAD, (preset,), LOADED, self.reply_port, self.timing, listener))

    def presets(self, listener=None) -> PresetsQuery:
        return self._add(PresetsQuery(self.next_id(), self.reply_port, self.timing, listener))

    def render(self, clip_id: str, preset: str, notes: Sequence[dict], sample_rate: int = 48000,
               length: float = 0.0, seed: int = 0, file_name: str = "", listener=None) -> RenderSession:
        """Start a render; `notes` are dicts {id, pitch, onset, offset, velocity?, controls?} (times in seconds
        from the start of the clip, which is sample 0 of the returned file)."""
        return self._add(RenderSession(self.next_id(), clip_id, preset, notes, sample_rate, length, seed, file_name,
                                       self.reply_port, self.timing, listener))

    def cancel(self, session: RenderSession) -> None:
        """Ask the engine to drop a render; the session fails with CANCELLED when the engine confirms."""
        if not session.finished:
            self.outbox.append(session.cancel_datagram())

    def poll(self, now: float) -> list[bytes]:
        """Datagrams to send now (to the engine's address); forgets finished requests."""
        out, self.outbox = self.outbox, []
        for req, request in list(self.open.items()):
            out.extend(request.poll(now))
            if request.finished:
                del self.open[req]
        return out

    def handle_datagram(self, data: bytes, now: float) -> int:
        """Feed one received datagram; returns how many of its messages belonged to an open request. Anything
        malformed or unknown is ignored."""
        used = 0
        for item in decode(data, REPLIES):
            if isinstance(item, Parsed) and item.req in self.open:
                request = self.open[item.req]
                request.handle(item, now)
                used += 1
                if request.finished:
                    del self.open[item.req]
        return used
