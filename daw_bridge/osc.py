"""OSC 1.0 messages as bytes, in pure Python (no sockets, no third-party packages).

Small on purpose: a DAW's embedded Python (Ableton Live's, REAPER's) has only the standard library. Encodes and
decodes single messages and decodes bundles (their timetags are ignored: everything is acted on at once).

Type tags: i (int32), h (int64), f (float32), d (float64), s / S (string / symbol, UTF-8), b (blob), c (char),
m (MIDI, 4 bytes), t (timetag), r (RGBA), T / F / N / I (true, false, nil, infinitum; no data). Arrays ([ ]) are
refused.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Sequence

MAX_BUNDLE_DEPTH = 4
NO_DATA = "TFNI"  # tags that carry no bytes


class OSCError(ValueError):
    """Bytes that are not a well-formed OSC packet; the message says where."""


@dataclass(frozen=True)
class Message:
    address: str
    types: str  # type tags without the leading ','
    args: tuple

    def __repr__(self) -> str:
        return f"Message({self.address!r}, {self.types!r}, {self.args!r:.200})"


def _pad(n: int) -> int:
    return (n + 3) & ~3


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    if b"\0" in raw:
        raise OSCError("OSC strings cannot contain NUL")
    return raw + b"\0" * (_pad(len(raw) + 1) - len(raw))


def _infer(value: Any) -> str:
    if value is True:
        return "T"
    if value is False:
        return "F"
    if value is None:
        return "N"
    if isinstance(value, int):
        return "i" if -2 ** 31 <= value < 2 ** 31 else "h"
    if isinstance(value, float):
        return "f"
    if isinstance(value, str):
        return "s"
    if isinstance(value, (bytes, bytearray)):
        return "b"
    raise OSCError(f"cannot send a {type(value).__name__} in OSC")


def encode_message(address: str, args: Sequence[Any] = (), types: str | None = None) -> bytes:
    """One OSC message. `types` gives each tag (e.g. "isd"), `args` one value per tag that carries data (none for
    T, F, N, I); without `types` tags are inferred (int -> i or h, float -> f, str -> s, bytes -> b, bool -> T/F,
    None -> N)."""
    if not address.startswith("/"):
        raise OSCError(f"OSC address must start with '/': {address!r}")
    if types is None:
        types = "".join(_infer(v) for v in args)
        args = [v for v, tag in zip(args, types) if tag not in NO_DATA]
    data_tags = [tag for tag in types if tag not in NO_DATA]
    if len(data_tags) != len(args):
        raise OSCError(f"{len(args)} arguments for type tags {types!r}")
    parts = [_string(address), _string("," + types)]
    parts.extend(_encode_arg(tag, value) for tag, value in zip(data_tags, args))
    return b"".join(parts)


def _encode_arg(tag: str, value: Any) -> bytes:
    try:
        if tag == "i":
            return struct.pack(">i", int(value))
        if tag == "h":
            return struct.pack(">q", int(value))
        if tag == "f":
            return struct.pack(">f", float(value))
        if tag == "d":
            return struct.pack(">d", float(value))
        if tag in "sS":
            return _string(str(value))
        if tag == "b":
            blob = bytes(value)
            return struct.pack(">i", len(blob)) + blob + b"\0" * (_pad(len(blob)) - len(blob))
        if tag == "c":
            return struct.pack(">I", ord(value) if isinstance(value, str) else int(value))
        if tag in "mr":
            return struct.pack(">I", int(value)) if isinstance(value, int) else bytes(value)[:4].ljust(4, b"\0")
        if tag == "t":
            return struct.pack(">Q", int(value))
    except (struct.error, TypeError, ValueError) as error:
        raise OSCError(f"cannot encode {value!r} as OSC type {tag!r}: {error}") from None
    raise OSCError(f"unknown OSC type tag {tag!r}")


def _read_string(data: bytes, pos: int, what: str) -> tuple[str, int]:
    end = data.find(b"\0", pos)
    if end < 0:
        raise OSCError(f"{what} is not NUL-terminated")
    try:
        text = data[pos:end].decode("utf-8")
    except UnicodeDecodeError:
        raise OSCError(f"{what} is not valid UTF-8") from None
    nxt = _pad(end + 1)
    if nxt > len(data):
        raise OSCError(f"{what} padding runs past the end of the packet")
    return text, nxt


_FIXED = {"i": (">i", 4), "h": (">q", 8), "f": (">f", 4), "d": (">d", 8), "c": (">I", 4), "m": (None, 4),
          "r": (None, 4), "t": (">Q", 8)}


def decode_message(data: bytes) -> Message:
    """Bytes of one OSC message -> Message; raises OSCError on anything malformed (never another exception)."""
    if len(data) < 4 or len(data) % 4:
        raise OSCError(f"an OSC packet is a non-empty multiple of 4 bytes, got {len(data)}")
    address, pos = _read_string(data, 0, "address")
    if not address.startswith("/"):
        raise OSCError(f"OSC address must start with '/': {address[:40]!r}")
    if pos >= len(data):
        return Message(address, "", ())  # OSC 1.0 allows a missing type tag string
    tags, pos = _read_string(data, pos, "type tag string")
    if not tags.startswith(","):
        raise OSCError("type tag string must start with ','")
    tags = tags[1:]
    args = []
    for tag in tags:
        if tag in "TFNI":
            args.append({"T": True, "F": False, "N": None, "I": float("inf")}[tag])
        elif tag in "sS":
            value, pos = _read_string(data, pos, "string argument")
            args.append(value)
        elif tag == "b":
            if pos + 4 > len(data):
                raise OSCError("blob size runs past the end of the packet")
            (size,) = struct.unpack_from(">i", data, pos)
            if size < 0 or pos + 4 + _pad(size) > len(data):
                raise OSCError(f"blob of {size} bytes runs past the end of the packet")
            args.append(bytes(data[pos + 4:pos + 4 + size]))
            pos += 4 + _pad(size)
        elif tag in _FIXED:
            fmt, size = _FIXED[tag]
            if pos + size > len(data):
                raise OSCError(f"argument of type {tag!r} runs past the end of the packet")
            args.append(struct.unpack_from(fmt, data, pos)[0] if fmt else bytes(data[pos:pos + size]))
            pos += size
        elif tag in "[]":
            raise OSCError("OSC arrays are not supported")
        else:
            raise OSCError(f"unknown OSC type tag {tag!r}")
    if pos != len(data):
        raise OSCError(f"{len(data) - pos} bytes left over after the last argument")
    return Message(address, tags, tuple(args))


def decode_packet(data: bytes, depth: int = 0) -> list[Message]:
    """A message or a bundle (nested up to MAX_BUNDLE_DEPTH) -> its messages in order; raises OSCError."""
    if not data.startswith(b"#bundle\0"):
        return [decode_message(data)]
    if depth >= MAX_BUNDLE_DEPTH:
        raise OSCError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    if len(data) < 16:
        raise OSCError("bundle shorter than its header")
    messages, pos = [], 16
    while pos < len(data):
        if pos + 4 > len(data):
            raise OSCError("bundle element size runs past the end of the packet")
        (size,) = struct.unpack_from(">i", data, pos)
        if size <= 0 or size % 4 or pos + 4 + size > len(data):
            raise OSCError(f"bundle element of {size} bytes does not fit the packet")
        messages.extend(decode_packet(data[pos + 4:pos + 4 + size], depth + 1))
        pos += 4 + size
    return messages


def encode_bundle(messages: Sequence[bytes], timetag: int = 1) -> bytes:
    """Encoded messages -> one bundle (timetag 1 = immediately)."""
    return b"#bundle\0" + struct.pack(">Q", timetag) + b"".join(struct.pack(">i", len(m)) + m for m in messages)
