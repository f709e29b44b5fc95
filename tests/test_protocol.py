"""The OSC codec and the protocol tables (daw_bridge.osc, daw_bridge.protocol): pure functions, no engine."""
import random
import subprocess
import sys

import pytest

from daw_bridge import osc, protocol as p

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_every_type_round_trips():
    data = osc.encode_message("/x/y", [1, -2 ** 40, 0.5, 0.1, "héllo", "sym", b"\x00\x01\x02", "c", 2 ** 40],
                              "ihfdsSbct")
    message = osc.decode_message(data)
    assert message.address == "/x/y" and message.types == "ihfdsSbct"
    assert message.args[:2] == (1, -2 ** 40) and message.args[2] == 0.5 and message.args[3] == 0.1
    assert message.args[4:7] == ("héllo", "sym", b"\x00\x01\x02") and message.args[8] == 2 ** 40
    assert osc.decode_message(osc.encode_message("/t", [True, False, None])).args == (True, False, None)


def test_interoperates_with_python_osc():
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    ours = osc.encode_message("/ddsp/x", [3, 2.5, "abc", 1.25], "ifsd")
    assert OscMessage(ours).params == [3, 2.5, "abc", 1.25]
    builder = OscMessageBuilder("/ddsp/y")
    for value in (7, 1.5, "z"):
        builder.add_arg(value)
    theirs = builder.build().dgram
    assert osc.decode_message(theirs) == osc.Message("/ddsp/y", "ifs", (7, 1.5, "z"))


def test_liblo_oscsend_bytes_decode(tmp_path):
    """oscsend (liblo) writes the message to stdout with url '-'."""
    out = subprocess.run(["oscsend", "-", "/ddsp/render", "issiiidis", "5", "clip", "parametric", "48000", "2", "1",
                          "0.5", "3", "x.wav"], capture_output=True, check=True).stdout
    parsed = p.decode(out, p.REQUESTS)[0]
    assert parsed.fields == {"req": 5, "clip": "clip", "preset": "parametric", "sample_rate": 48000, "n_notes": 2,
                             "n_chunks": 1, "length": 0.5, "seed": 3, "file_name": "x.wav"}


def test_bundles_are_flattened_and_depth_limited():
    a, b = osc.encode_message("/a", [1]), osc.encode_message("/b", ["x"])
    assert [m.address for m in osc.decode_packet(osc.encode_bundle([a, osc.encode_bundle([b])]))] == ["/a", "/b"]
    nested = a
    for _ in range(osc.MAX_BUNDLE_DEPTH + 1):
        nested = osc.encode_bundle([nested])
    with pytest.raises(osc.OSCError, match="nested"):
        osc.decode_packet(nested)


@pytest.mark.parametrize("data, words", [
    (b"", "multiple of 4"), (b"/abc", "NUL"), (b"abc\0", "start with '/'"), (b"/a\0\0,q\0\0", "unknown OSC type"),
    (b"/a\0\0,i\0\0", "runs past"), (b"/a\0\0,s\0\0abcd", "NUL"), (b"/a\0\0,b\0\0\x7f\0\0\0", "blob"),
    (b"/a\0\0,[i]\0\0\0\0", "arrays"), (b"/a\0\0,\0\0\0\0\0\0\0", "left over"), (b"/\xff\0\0", "UTF-8"),
])
def test_malformed_packets_raise_osc_error(data, words):
    with pytest.raises(osc.OSCError, match=words):
        osc.decode_packet(data)


def test_random_bytes_never_raise_anything_but_osc_error():
    rng = random.Random(1)
    valid = osc.encode_message("/ddsp/notes", [1, 0, "id", 60, 0.0, 1.0, 100] + [0.5] * 6, "iisiddiffffff")
    for _ in range(5000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data[:rng.randrange(len(data) + 1)]) if rng.random() < 0.3 else bytes(data)
        for item in p.decode(data, p.REQUESTS):
            assert isinstance(item, (p.Parsed, p.ProtocolError))


def test_ten_thousand_notes_fit_4k_datagrams_and_reassemble():
    notes = [{"id": f"note-{i}", "pitch": 40 + i % 60, "onset": i * 0.25, "offset": i * 0.25 + 0.2,
              "velocity": i % 128, "controls": None if i % 3 else [i % 7 / 7.0] * 6} for i in range(10_000)]
    chunks = p.note_chunks(9, notes, reply_port=5000)
    assert max(len(c) for c in chunks) <= p.MAX_DATAGRAM and len(chunks) < 200
    records = []
    for index, data in enumerate(chunks):
        (parsed,) = p.decode(data, p.REQUESTS)
        assert parsed.fields == {"req": 9, "chunk": index} and parsed.reply_port == 5000
        records.extend(parsed.records)
    assert [r["id"] for r in records] == [n["id"] for n in notes]
    assert [r["onset"] for r in records] == [n["onset"] for n in notes]  # float64: exact
    assert p.controls_tuple(records[1]) is None
    assert p.controls_tuple(records[3]) == pytest.approx((3 / 7.0,) * 6)


def test_long_note_ids_still_fit():
    notes = [{"id": "x" * p.MAX_ID_CHARS + str(i), "pitch": 60, "onset": i, "offset": i + 1} for i in range(200)]
    assert max(len(c) for c in p.note_chunks(1, notes)) <= p.MAX_DATAGRAM


@pytest.mark.parametrize("data, code, req", [
    (osc.encode_message("/ddsp/nope", [4]), p.UNKNOWN_ADDRESS, 4),
    (osc.encode_message("/ddsp/ping", [4, 5, 6]), p.BAD_ARGUMENTS, 4),
    (osc.encode_message("/ddsp/ping", ["4"]), p.BAD_ARGUMENTS, 0),
    (osc.encode_message("/ddsp/load", [4, 5]), p.BAD_ARGUMENTS, 4),
    (osc.encode_message("/ddsp/fetch", [4, 0.5, 1], "ifi"), p.BAD_ARGUMENTS, 4),
    (osc.encode_message("/ddsp/render", [4, "c", "p", 48000, 1, 1, float("nan"), 0, ""], "issiiidis"),
     p.BAD_ARGUMENTS, 4),
    (osc.encode_message("/ddsp/ping", [4, 70000]), p.BAD_ARGUMENTS, 4),
    (osc.encode_message("/ddsp/notes", [4, 0, "a", 60]), p.BAD_ARGUMENTS, 4),
    (b"garbage!", p.MALFORMED, 0),
])
def test_bad_requests_get_the_right_code(data, code, req):
    (error,) = p.decode(data, p.REQUESTS)
    assert isinstance(error, p.ProtocolError) and error.code == code and error.req == req


def test_numbers_accept_any_numeric_tag_and_reply_port_is_optional():
    data = osc.encode_message("/ddsp/render", [4, "c", "p", 48000, 1, 1, 2, 0, ""], "issiiiiis")
    assert p.decode(data, p.REQUESTS)[0].fields["length"] == 2.0
    note = ["a", 60, 0, 1, 100, -1, -1, -1, -1, -1, -1]
    with_port = p.decode(osc.encode_message("/ddsp/notes", [4, 0] + note + [9000]), p.REQUESTS)[0]
    without = p.decode(osc.encode_message("/ddsp/notes", [4, 0] + note), p.REQUESTS)[0]
    assert with_port.reply_port == 9000 and without.reply_port is None and with_port.records == without.records


def test_reply_tables_round_trip_through_encode():
    rows = [(f"n{i}", i % 2, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6) for i in range(500)]
    chunks = p.control_chunks(3, rows)
    assert max(len(c) for c in chunks) <= p.MAX_DATAGRAM
    parsed = [p.decode(c, p.REPLIES)[0] for c in chunks]
    assert all(x.fields["n_chunks"] == len(chunks) for x in parsed)
    assert sum(len(x.records) for x in parsed) == 500 and parsed[0].records[1]["rerendered"] == 1


def test_control_names_match_the_engine():
    from engine.notes import CONTROL_NAMES

    assert p.CONTROL_NAMES == CONTROL_NAMES


@pytest.mark.parametrize("modules, forbidden", [
    ("daw_bridge.osc, daw_bridge.protocol, daw_bridge.client", ("torch", "numpy", "engine", "pythonosc")),
    ("daw_bridge.cli", ("torch", "engine")),
])
def test_daw_bridge_imports_without_torch_or_engine(modules, forbidden):
    """The protocol and client run in a DAW's embedded Python (standard library only); the CLI never loads torch."""
    code = (f"import sys; import {modules}; "
            f"bad = [m for m in sys.modules if m.split('.')[0] in {forbidden!r}]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
