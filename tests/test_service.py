"""The engine service over real UDP sockets on 127.0.0.1, seen from its server: handshake, round trips, big clips,
lossy networks, bad input, fuzzing, reply ports. Uploads, jobs and output files: test_service_uploads.py,
test_service_jobs.py, test_service_output.py."""
import logging
import os
import random
import re
import socket
import threading

import numpy as np
import pytest
import soundfile as sf

from daw_bridge import osc, protocol as p
from daw_bridge.client import EngineError
from engine.notes import Clip
from engine.render import render_clip
from service_fixtures import NOTE, Peer, client_for, errors, header, notes, running_service


def test_handshake_ping_presets_and_load(tmp_path):
    with running_service(tmp_path) as service, client_for(service) as client:
        hello = client.hello()
        assert hello["protocol"] == p.PROTOCOL_VERSION and hello["engine_id"] == service.engine_id
        assert client.ping()["engine_id"] == service.engine_id
        presets = {x["name"]: x for x in client.presets()}
        assert presets["parametric"]["kind"] == "parametric" and presets["parametric"]["loaded"] == 0
        client.load("parametric")
        assert {x["name"]: x for x in client.presets()}["parametric"]["loaded"] == 1
        with pytest.raises(EngineError, match="unknown_preset"):
            client.load("no-such-preset")
        peer = Peer(service.port)
        (reply,) = peer.request(p.HELLO, 5, 99, "future client")
        assert reply.fields["code"] == p.VERSION and "99" in reply.fields["message"]


def test_render_round_trip_equals_an_in_process_render(tmp_path, parametric):
    sent = notes(24)
    sent[3]["controls"] = [0.9, 0.1, 0.5, 0.6, 0.7, 0.2]
    with running_service(tmp_path) as service, client_for(service) as client:
        seen = []
        result = client.render("item-1", "parametric", sent, sample_rate=22050, seed=3,
                               progress=lambda fraction, state: seen.append(state))
        named = client.render("item-2", "parametric", sent, sample_rate=22050, seed=3, length=9.5,
                              file_name="take.wav")
    assert seen[-1] == "done" and "rendering" in seen
    assert os.path.dirname(result.path) == str(service.render_dir) and result.mode == "full"
    audio, rate = sf.read(result.path, dtype="float32")
    expected = render_clip(Clip.from_data(sent).checked(), parametric, 22050, seed=3)
    assert rate == 22050 and np.array_equal(audio, expected.audio)
    assert result.controls["n3"] == pytest.approx((0.9, 0.1, 0.5, 0.6, 0.7, 0.2))
    assert result.controls == expected.controls  # float32 on the wire: exact
    assert sorted(result.rerendered) == sorted(n["id"] for n in sent)
    assert named.path == str(service.render_dir / "take.wav") and named.duration == pytest.approx(9.5)
    assert not list((service.render_dir / ".tmp").iterdir())


def test_ten_thousand_note_clip_arrives_intact(tmp_path, parametric):
    rng = np.random.default_rng(0)
    sent = notes(10_000, step=0.01, length=0.008)
    for note in sent:
        note["controls"] = [float(np.float32(x)) for x in rng.random(6)]
    with running_service(tmp_path) as service, client_for(service) as client:
        session = client.start_render("big", "parametric", sent, sample_rate=16000)
        assert len(session.chunks) > 100 and max(len(c) for c in session.chunks) <= p.MAX_DATAGRAM
        result = client.wait(session, timeout=120).result
    assert list(result.controls) == [n["id"] for n in sent]  # every note, in the clip's order
    assert all(result.controls[n["id"]] == tuple(n["controls"]) for n in sent)  # bit-exact float32
    assert result.duration == pytest.approx(sent[-1]["offset"] + 1.2, abs=1e-3)
    # and every note's pitch and times arrived: the audio is what the same notes render to here
    audio, _ = sf.read(result.path, dtype="float32")
    expected = render_clip(Clip.from_data(sent).checked(), parametric, 16000).audio
    differs = np.flatnonzero(audio != expected) if audio.shape == expected.shape else [0]
    assert len(differs) == 0, f"the audio differs from {differs[0] / 16000:.3f} s on (note n{int(differs[0] / 160)})"


class LossyProxy:
    """A UDP relay between one client and the engine that drops, duplicates and reorders datagrams both ways."""

    def __init__(self, engine_port: int, drop=0.2, duplicate=0.1, delay=0.1, seed=0):
        self.engine = ("127.0.0.1", engine_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.rng, self.drop, self.duplicate, self.delay = random.Random(seed), drop, duplicate, delay
        self.client = None
        self.held: list[tuple[bytes, tuple]] = []
        self.counts = {"dropped": 0, "duplicated": 0, "delayed": 0}
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                data, source = self.sock.recvfrom(65536)
            except socket.timeout:
                data = None
            if data is not None:
                if source != self.engine:
                    self.client = source
                target = self.client if source == self.engine else self.engine
                roll = self.rng.random()
                if roll < self.drop:
                    self.counts["dropped"] += 1
                elif roll < self.drop + self.delay:
                    self.held.append((data, target))  # sent after the next datagram: reordered
                    self.counts["delayed"] += 1
                    continue
                else:
                    copies = 2 if self.rng.random() < self.duplicate else 1
                    self.counts["duplicated"] += copies - 1
                    for _ in range(copies):
                        self.sock.sendto(data, target)
            for held, target in self.held:
                self.sock.sendto(held, target)
            self.held = []

    def close(self):
        self.running = False
        self.thread.join(10)
        assert not self.thread.is_alive(), "the proxy thread did not stop"
        self.sock.close()


def test_lossy_duplicating_reordering_network_still_delivers(tmp_path, parametric):
    sent = notes(3000, step=0.01, length=0.008)
    with running_service(tmp_path) as service:
        proxy = LossyProxy(service.port)
        try:
            client = client_for(service, p.Timing(resend=0.05, connect_timeout=10, status_after=0.3, lost_after=10))
            client.address = ("127.0.0.1", proxy.port)
            result = client.render("lossy", "parametric", sent, sample_rate=16000, timeout=60)
            client.close()
        finally:
            proxy.close()
    assert min(proxy.counts.values()) >= 5, proxy.counts  # every fault happened, several times
    assert list(result.controls) == [n["id"] for n in sent]
    audio, _ = sf.read(result.path, dtype="float32")
    expected = render_clip(Clip.from_data(sent).checked(), parametric, 16000).audio
    differs = np.flatnonzero(audio != expected) if audio.shape == expected.shape else [0]
    assert len(differs) == 0, f"the audio differs from {differs[0] / 16000:.3f} s on (note n{int(differs[0] / 160)})"


BAD_REQUESTS = [
    (b"\x00\x01garbage", p.MALFORMED),
    (osc.encode_message("/ddsp/launch", [1]), p.UNKNOWN_ADDRESS),
    (osc.encode_message("/ddsp/ping", ["one"]), p.BAD_ARGUMENTS),
    (osc.encode_message("/ddsp/render", [1, "c"]), p.BAD_ARGUMENTS),
    (header(1, preset="violin-that-is-not-there"), p.UNKNOWN_PRESET),
    (header(1, preset="../../etc"), p.UNKNOWN_PRESET),
    (header(1, rate=1000), p.BAD_ARGUMENTS),
    (header(1, n_notes=10 ** 9, n_chunks=5), p.TOO_LARGE),
    (header(1, n_notes=5, n_chunks=0), p.BAD_ARGUMENTS),
    (header(1, n_notes=0, n_chunks=0), p.BAD_ARGUMENTS),
    (header(1, length=1e12), p.TOO_LARGE),
    (header(1, length=-3.0), p.BAD_ARGUMENTS),
    (header(1, clip="x" * 300), p.TOO_LARGE),
    (header(1, clip=""), p.BAD_ARGUMENTS),
    (header(1, name="../evil.wav"), p.BAD_FILE_NAME),
    (header(1, name="/tmp/evil.wav"), p.BAD_FILE_NAME),
    (header(1, name="evil.exe"), p.BAD_FILE_NAME),
    (header(1, name=".hidden.wav"), p.BAD_FILE_NAME),
    (p.encode(p.NOTES, 77, 0, records=[NOTE]), p.UNKNOWN_REQUEST),
    (p.encode(p.STATUS, 77), p.UNKNOWN_REQUEST),
    (p.encode(p.FETCH, 77, 0, 1), p.UNKNOWN_REQUEST),
    (p.encode(p.CANCEL, 77), p.UNKNOWN_REQUEST),
]


def test_bad_requests_get_an_error_and_the_engine_keeps_serving(tmp_path):
    with running_service(tmp_path) as service:
        peer = Peer(service.port)
        for data, code in BAD_REQUESTS:
            peer.send(data)
            peer.send(p.encode(p.PING, 9))
            replies = peer.replies(until=lambda r: r.address == p.PONG)
            assert [r.fields.get("code") for r in replies] == [code, None], (data, replies)
        assert not list(service.render_dir.glob("*.wav"))


def test_fuzz_thousands_of_datagrams_each_get_a_reply(tmp_path):
    rng = random.Random(4)
    templates = [p.encode(p.PING, 1), header(2, n_notes=1), p.encode(p.NOTES, 2, 0, records=[NOTE]),
                 p.encode(p.FETCH, 3, 0, 4), p.encode(p.STATUS, 4), p.encode(p.HELLO, 5, 1, "x"),
                 p.encode(p.CANCEL, 6), osc.encode_bundle([p.encode(p.STATUS, 7)])]
    with running_service(tmp_path, max_uploads=8) as service:
        peer = Peer(service.port)
        unanswered, replies_total, sent = 0, 0, 0
        for i in range(3000):
            kind = rng.random()
            if kind < 0.2:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
            else:
                data = bytearray(rng.choice(templates))
                for _ in range(rng.randint(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                if rng.random() < 0.2:
                    data = data[:rng.randrange(1, len(data))]
                data = bytes(data)
            decoded = p.decode(data, p.REQUESTS)
            if any(isinstance(x, p.Parsed) and x.reply_port for x in decoded):
                continue  # its replies go to another port
            peer.send(data)
            marker = 10 ** 6 + i
            peer.send(p.encode(p.PING, marker))
            try:
                got = peer.replies(until=lambda r: r.address == p.PONG and r.req == marker)
            except AssertionError as error:
                raise AssertionError(f"engine stopped answering after datagram {i}: {data!r}") from error
            replies_total += len(got) - 1
            unanswered += len(got) == 1
            sent += 1
        assert sent > 2500 and unanswered == 0, (unanswered, sent)
        assert service.threads[0].is_alive() and not list(service.render_dir.glob("*.wav"))


def test_reply_port_sends_replies_elsewhere(tmp_path):
    with running_service(tmp_path) as service:
        sender, listener = Peer(service.port), Peer(service.port)
        sender.send(p.encode(p.PING, 3, reply_port=listener.sock.getsockname()[1]))
        assert [r.address for r in listener.replies()] == [p.PONG] and sender.quiet(0.5) == []


def test_a_flood_of_bad_datagrams_is_answered_but_logged_in_a_few_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="engine.service")
    with running_service(tmp_path) as service:
        flood, peer = Peer(service.port), Peer(service.port)
        for _ in range(3000):
            flood.send(b"\x00\x01garbage")
        for _ in range(20):
            flood.send(header(1, rate=1000))
        assert peer.request(p.PING, 9)[0].address == p.PONG  # everything before it was handled
        assert errors(peer.request(p.STATUS, 1234), p.UNKNOWN_REQUEST)  # every reply still goes out
    lines = [r.getMessage() for r in caplog.records if r.name == "engine.service"]
    malformed = [line for line in lines if "malformed" in line]
    assert 1 <= len(malformed) <= 20, malformed[:30]
    summarised = [int(re.search(r"(\d+) more", line).group(1)) for line in malformed if "not logged" in line]
    assert summarised and len(malformed) - len(summarised) + sum(summarised) == 3000, malformed  # all counted
    assert [line for line in lines if "bad_arguments" in line]  # another kind of error is logged on its own
    assert [line for line in lines if "1234" in line]


def test_presets_are_never_looked_up_in_the_engines_working_directory(tmp_path, monkeypatch, parametric):
    impostor = tmp_path / "parametric"
    impostor.mkdir()
    (impostor / "preset.json").write_text('{"kind": "parametric", "description": "impostor", "max_hz": 2000.0}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DDSP_PRESETS_PATH", raising=False)
    sent = notes(3)
    with running_service(tmp_path) as service, client_for(service) as client:
        result = client.render("shadow", "parametric", sent, sample_rate=16000)
        assert service.presets.get("parametric").path == parametric.path
    audio, _ = sf.read(result.path, dtype="float32")
    expected = render_clip(Clip.from_data(sent).checked(), parametric, 16000).audio
    differs = np.flatnonzero(audio != expected) if audio.shape == expected.shape else [0]
    assert len(differs) == 0, f"the audio differs from {differs[0] / 16000:.3f} s on (note n{int(differs[0] / 160)})"
