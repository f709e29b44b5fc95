"""Interoperability: drive the engine with liblo's oscsend and read its replies with oscdump (Debian liblo-tools), an
OSC implementation we did not write (installed by `make system-deps`). Requests end with the reply port oscdump
listens on."""
import os
import re
import shlex
import socket
import subprocess
import time

import pytest

from engine.notes import Note
from engine.synthesis import RuleExpression
from service_fixtures import running_service

def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dump:
    """oscdump on a port; `lines()` are the messages it printed, without their timestamps."""

    def __init__(self, tmp_path):
        self.port = free_udp_port()
        self.out = open(tmp_path / "dump.txt", "w+")
        self.process = subprocess.Popen(["oscdump", "-L", str(self.port)], stdout=self.out, stderr=subprocess.STDOUT)
        time.sleep(0.3)

    def lines(self) -> list[str]:
        self.out.flush()
        self.out.seek(0)
        return [line.split(" ", 1)[1].strip() for line in self.out.read().splitlines() if " /ddsp/" in line]

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                match = re.match(pattern, line)
                if match:
                    return match
            time.sleep(0.05)
        raise AssertionError(f"oscdump never printed {pattern!r}; it printed {self.lines()}")

    def close(self):
        self.process.terminate()
        self.process.wait(10)
        self.out.close()


def oscsend(port: int, address: str, types: str, *values) -> None:
    subprocess.run(["oscsend", "localhost", str(port), address, types, *map(str, values)], check=True, timeout=10)


def test_liblo_round_trip_ping_render_fetch_and_errors(tmp_path):
    dump = Dump(tmp_path)
    try:
        with running_service(tmp_path) as service:
            engine, reply = service.port, dump.port
            oscsend(engine, "/ddsp/ping", "ii", 7, reply)
            assert dump.wait_for(r'/ddsp/pong isiid 7 "(\w+)" 0 0 ').group(1) == service.engine_id

            oscsend(engine, "/ddsp/render", "issiiidisi", 8, "liblo-clip", "parametric", 44100, 2, 2, 0.0, 0,
                    "liblo.wav", reply)
            dump.wait_for(r"/ddsp/ack ii 8 -1")
            oscsend(engine, "/ddsp/notes", "iisiddiffffffi", 8, 0, "a", 60, 0.0, 1.0, 100, *[-1] * 6, reply)
            oscsend(engine, "/ddsp/notes", "iisiddiffffffi", 8, 1, "b", 67, 1.0, 1.5, 50,
                    0.5, 0.1, 0.2, 0.3, 0.4, 0.6, reply)
            done = dump.wait_for(r'/ddsp/done isdiiiisd 8 "([^"]+)" ([\d.]+) 44100 2 1 2 "full"')
            assert done.group(1) == str(service.render_dir / "liblo.wav") and os.path.exists(done.group(1))
            assert float(done.group(2)) == pytest.approx(1.5 + 1.2, abs=1e-4)

            oscsend(engine, "/ddsp/fetch", "iiii", 8, 0, 1, reply)
            controls = dump.wait_for(r'/ddsp/controls iiisiffffffsiffffff 8 0 1 "a" 1 (.+) "b" 1 (.+)')
            expected_a = RuleExpression().generate([Note(60, 0.0, 1.0, 100, "a")])[0].tolist()
            assert [float(x) for x in controls.group(1).split()] == pytest.approx(expected_a, abs=1e-6)
            assert [float(x) for x in controls.group(2).split()] == pytest.approx([0.5, 0.1, 0.2, 0.3, 0.4, 0.6])

            oscsend(engine, "/ddsp/ping", "si", "seven", reply)  # wrong type: the error reaches the reply port
            dump.wait_for(r'/ddsp/error iss 0 "bad_arguments" "/ddsp/ping: req must be an integer')
            oscsend(engine, "/ddsp/render", "issiiidisi", 9, "c", "nope", 44100, 1, 1, 0.0, 0, "", reply)
            dump.wait_for(r'/ddsp/error iss 9 "unknown_preset"')
            oscsend(engine, "/ddsp/status", "ii", 8, reply)  # a finished request answers with its /ddsp/done again
            deadline = time.monotonic() + 20
            while len([x for x in dump.lines() if x.startswith("/ddsp/done")]) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len([x for x in dump.lines() if x.startswith("/ddsp/done")]) == 2
    finally:
        dump.close()


def test_oscsend_writes_the_same_bytes_as_daw_bridge():
    """The bytes oscsend writes for a notes chunk decode to what daw_bridge encodes for the same note."""
    from daw_bridge import protocol as p

    args = ["/ddsp/notes", "iisiddiffffff", "3", "0", "n1", "64", "0.25", "0.75", "90"] + ["0.5"] * 6
    theirs = subprocess.run(["oscsend", "-", *args], capture_output=True, check=True).stdout
    ours = p.encode(p.NOTES, 3, 0, records=[("n1", 64, 0.25, 0.75, 90) + (0.5,) * 6])
    assert theirs == ours, shlex.join(args)
