"""Requests as the service keeps them, by sender and request id: a render request's header opens an upload of its
notes in chunks (each acknowledged; limited in number per sender and in all; expired when a chunk is overdue); a
complete upload becomes a clip; the request's latest reply stays answerable (status, fetch of the controls) until
it has grown old. Only a request's sender reaches it (config.Sender): a message about someone else's request
gets `unknown_request` at its own address, and the owner hears nothing of it."""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from daw_bridge import protocol as p

from ..notes import Clip, NoteError
from .config import Client, Send, Sender, SendError, ServiceConfig
from .preset_cache import PresetCache

log = logging.getLogger("engine.service")

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(wav|flac)")
MAX_WARNINGS = 10


class ForeignRequest(p.ProtocolError):
    """A message about a request its sender does not own (it named the owner's port as its reply port): answered
    at the datagram's own address, never at the owner's."""


class CurvePiece:
    """A /ddsp/curves chunk: points of one note's curve (a long curve comes in several pieces, in chunk order)."""

    def __init__(self, note_id: str, name: str, points: list[tuple[float, float]]):
        self.note_id, self.name, self.points = note_id, name, points


@dataclass(eq=False)
class RequestState:
    client: Client  # where its replies go
    req: int
    header: dict
    chunks: dict[int, list[dict] | CurvePiece] = field(default_factory=dict)
    updated: float = field(default_factory=time.monotonic)
    status: str = "receiving"  # receiving, complete (all chunks in, not yet queued), queued, rendering, done, failed
    latest: bytes = b""  # the message /ddsp/status re-sends
    job: Any = None  # its jobs.Job once queued
    control_datagrams: list[bytes] = field(default_factory=list)
    owner: tuple = ()  # config.Sender.owner of the client that opened it

    def fail(self, code: str, message: str) -> bytes:
        """(lock held) Finish the request with an error; returns the error reply for its client."""
        self.status, self.updated = "failed", time.monotonic()
        self.latest = p.encode(p.ERROR, self.req, code, message[:1000])
        log.info("req %d (clip %r) failed: %s: %s", self.req, self.header["clip"], code, message)
        return self.latest


class Uploads:
    """The requests clients have opened, from their upload until `result_ttl` s after they finished. `lock` (the
    service's) guards them; `stopping` refuses new ones; `send` and `error` reply."""

    def __init__(self, config: ServiceConfig, lock: threading.RLock, stopping: threading.Event,
                 presets: PresetCache, send: Send, error: SendError):
        self.config, self.lock, self.stopping, self.presets = config, lock, stopping, presets
        self.send, self.error = send, error
        self.requests: dict[tuple[tuple, int], RequestState] = {}  # (Sender.owner, req) -> request
        self.receiving: dict[tuple, int] = {}  # Sender.owner -> uploads it has open

    def open(self, sender: Sender, req: int, header: dict) -> None:
        """A render request's header: open its upload and acknowledge it (chunk -1). The same header again re-sends
        the request's latest reply; another one under a request id in use is an error."""
        with self.lock:
            state = self.requests.get((sender.owner, req))
            if state is not None:
                if state.header != header:
                    raise p.ProtocolError(p.DUPLICATE_REQUEST, f"request id {req} is in use for clip "
                                                               f"{state.header['clip']!r}", req)
                self.send(state.latest, sender.reply)
                return
            self._refuse_foreign(sender, req)
        self.check_header(header, req)
        with self.lock:
            if self.stopping.is_set():
                raise p.ProtocolError(p.SHUTTING_DOWN, "the engine is shutting down", req)
            mine, total = self.receiving.get(sender.owner, 0), sum(self.receiving.values())
            if mine >= self.config.max_uploads:
                raise p.ProtocolError(p.BUSY, f"this client has {mine} uploads open; finish one or retry later", req)
            if total >= self.config.max_uploads_total:
                raise p.ProtocolError(p.BUSY, f"{total} uploads are open; retry later", req)
            state = RequestState(sender.reply, req, header, latest=p.encode(p.ACK, req, -1), owner=sender.owner)
            self.requests[(sender.owner, req)] = state
            self.receiving[sender.owner] = mine + 1
        log.info("render req %d from %s:%d: clip %r, preset %s, %d notes in %d chunks", req, sender.reply[0],
                 sender.reply[1], header["clip"], header["preset"], header["n_notes"], header["n_chunks"])
        self.send(state.latest, sender.reply)

    def _refuse_foreign(self, sender: Sender, req: int) -> None:
        """(lock held) A ForeignRequest if `req` is another sender's request whose replies go where this sender
        asked its replies to go."""
        if sender.reply != sender.source and any(s.req == req and s.client == sender.reply and s.owner != sender.owner
                                                 for s in self.requests.values()):
            raise ForeignRequest(p.UNKNOWN_REQUEST, f"no request {req} from this client", req)

    def _closed(self, state: RequestState) -> None:
        """(lock held) The request left the receiving state: one upload fewer open for its sender."""
        left = self.receiving.get(state.owner, 0) - 1
        if left > 0:
            self.receiving[state.owner] = left
        else:
            self.receiving.pop(state.owner, None)

    def check_header(self, header: dict, req: int) -> None:
        """A ProtocolError for the first thing wrong with a render header, if any."""
        def bad(code, text):
            raise p.ProtocolError(code, text, req)

        if not 1 <= len(header["clip"]) <= p.MAX_NAME_CHARS:
            bad(p.TOO_LARGE if header["clip"] else p.BAD_ARGUMENTS, f"clip id must be 1-{p.MAX_NAME_CHARS} characters")
        self.presets.check(header["preset"], req)
        if not p.MIN_SAMPLE_RATE <= header["sample_rate"] <= p.MAX_SAMPLE_RATE:
            bad(p.BAD_ARGUMENTS, f"sample rate {header['sample_rate']} is outside "
                                 f"{p.MIN_SAMPLE_RATE}-{p.MAX_SAMPLE_RATE} Hz")
        n_notes, n_chunks = header["n_notes"], header["n_chunks"]
        if n_notes > p.MAX_NOTES or n_chunks > p.MAX_CHUNKS:
            bad(p.TOO_LARGE, f"{n_notes} notes in {n_chunks} chunks: at most {p.MAX_NOTES} notes and "
                             f"{p.MAX_CHUNKS} chunks")
        if n_notes < 1 or n_chunks < 1:
            bad(p.BAD_ARGUMENTS, f"{n_notes} notes in {n_chunks} chunks: need at least one of each")
        if header["length"] < 0 or header["length"] > p.MAX_SECONDS:
            bad(p.TOO_LARGE if header["length"] > 0 else p.BAD_ARGUMENTS,
                f"length {header['length']} s: use 0 (automatic) or up to {p.MAX_SECONDS:g} s")
        if header["file_name"] and not FILE_NAME.fullmatch(header["file_name"]):
            bad(p.BAD_FILE_NAME, f"file name {header['file_name'][:120]!r} is not a bare name ending .wav or .flac")

    def known(self, sender: Sender, req: int) -> RequestState:
        """(lock held) The sender's request `req`; an unknown_request ProtocolError if there is none (ForeignRequest
        if it is someone else's)."""
        state = self.requests.get((sender.owner, req))
        if state is None:
            self._refuse_foreign(sender, req)
            raise p.ProtocolError(p.UNKNOWN_REQUEST, f"no request {req} from this client (finished more than "
                                                     f"{self.config.result_ttl:g} s ago, or the engine restarted)",
                                  req)
        return state

    def add_chunk(self, sender: Sender, req: int, chunk: int, records: list[dict],
                  curve: tuple[str, str] | None = None) -> RequestState | None:
        """One chunk of notes, or of the points of `curve` (note id, curve name): keep it (the first copy) and
        acknowledge it. Returns the request when this chunk completed its upload (it no longer counts as open)."""
        with self.lock:
            state = self.known(sender, req)
            if not 0 <= chunk < state.header["n_chunks"]:
                raise p.ProtocolError(p.BAD_ARGUMENTS, f"chunk {chunk} is outside 0..{state.header['n_chunks'] - 1}",
                                      req)
            if not records:
                raise p.ProtocolError(p.BAD_ARGUMENTS, f"chunk {chunk} holds no {'points' if curve else 'notes'}",
                                      req)
            ids = [curve[0]] if curve else [r["id"] for r in records]
            long_id = next((i for i in ids if not 1 <= len(i) <= p.MAX_ID_CHARS), None)
            if long_id is not None:
                raise p.ProtocolError(p.TOO_LARGE if long_id else p.BAD_ARGUMENTS,
                                      f"note id {long_id[:40]!r} must be 1-{p.MAX_ID_CHARS} characters", req)
            if state.status == "receiving":
                state.chunks.setdefault(chunk, records if curve is None else
                                        CurvePiece(curve[0], curve[1], [(r["t"], r["value"]) for r in records]))
                state.updated = time.monotonic()
            complete = state.status == "receiving" and len(state.chunks) == state.header["n_chunks"]
            if complete:
                state.status = "complete"
                self._closed(state)
        self.send(p.encode(p.ACK, req, chunk), state.client)
        return state if complete else None

    def assemble(self, state: RequestState) -> Clip | None:
        """All chunks are in: the clip they hold, its repairs sent to the client as warnings. None when the notes
        cannot make a clip: the request has failed with bad_notes."""
        header, req = state.header, state.req
        chunks = [state.chunks[i] for i in sorted(state.chunks)]
        records = [r for c in chunks if not isinstance(c, CurvePiece) for r in c]
        state.chunks = {}
        try:
            if len(records) != header["n_notes"]:
                raise NoteError(f"the header announced {header['n_notes']} notes, the chunks hold {len(records)}")
            notes = []
            for record in records:
                controls = p.controls_tuple(record)
                notes.append({"id": record["id"], "pitch": record["pitch"], "onset": record["onset"],
                              "offset": record["offset"], "velocity": record["velocity"], "controls": controls})
            _attach_curves(notes, [c for c in chunks if isinstance(c, CurvePiece)])
            clip = Clip.from_data(notes, name=header["clip"], repair=True)
        except NoteError as error:
            with self.lock:
                self.send(state.fail(p.BAD_NOTES, str(error)), state.client)
            return None
        for repair in clip.repairs[:MAX_WARNINGS]:
            self.send(p.encode(p.WARNING, req, repair), state.client)
        return clip

    def cancel(self, state: RequestState) -> None:
        """(lock held) Cancel an upload still receiving: forget it and tell its client."""
        del self.requests[(state.owner, state.req)]
        self._closed(state)
        self.send(state.fail(p.CANCELLED, "cancelled by the client"), state.client)

    def latest(self, sender: Sender, req: int) -> bytes:
        """The request's latest reply (what /ddsp/status re-sends)."""
        with self.lock:
            return self.known(sender, req).latest

    def controls(self, sender: Sender, req: int, first: int, count: int) -> list[bytes]:
        """Datagrams first..first+count-1 of a finished request's controls."""
        with self.lock:
            state = self.known(sender, req)
            if state.status != "done":
                raise p.ProtocolError(p.BAD_ARGUMENTS, f"request {req} has no controls yet ({state.status})", req)
            datagrams = state.control_datagrams
        if not (0 <= first < len(datagrams) and 1 <= count <= p.MAX_FETCH):
            raise p.ProtocolError(p.BAD_ARGUMENTS, f"fetch {first}+{count}: chunks are 0..{len(datagrams) - 1}, "
                                                   f"1..{p.MAX_FETCH} at a time", req)
        return datagrams[first:first + count]

    def expire(self, now: float) -> None:
        """Drop uploads without a new chunk for upload_timeout s (with an `expired` error to the client) and
        results older than result_ttl s (`now`: time.monotonic())."""
        with self.lock:
            for key, state in list(self.requests.items()):
                age = now - state.updated
                if state.status == "receiving" and age > self.config.upload_timeout:
                    del self.requests[key]
                    self._closed(state)
                    self.error(state.client, state.req, p.EXPIRED,
                               f"upload incomplete for {self.config.upload_timeout:g} s "
                               f"({len(state.chunks)} of {state.header['n_chunks']} chunks)")
                elif state.status in ("done", "failed") and age > self.config.result_ttl:
                    del self.requests[key]


def _attach_curves(notes: list[dict], pieces: list[CurvePiece]) -> None:
    """Put the curves' points (pieces in chunk order) into the note dicts as {"curves": {name: points}}."""
    by_id = {note["id"]: note for note in notes}
    for piece in pieces:
        note = by_id.get(piece.note_id)
        if note is None:
            raise NoteError(f"a curve names note {piece.note_id!r:.60}, which is not in the clip")
        note.setdefault("curves", {}).setdefault(piece.name, []).extend(piece.points)
