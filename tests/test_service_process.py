"""`python -m engine serve` as a real process: clean shutdown on SIGTERM/SIGINT, and a kill mid-render that leaves
no partial file and that the client survives once the engine is back."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from daw_bridge import protocol as p
from daw_bridge.client import EngineClient, EngineError
from service_fixtures import notes

ROOT = Path(__file__).resolve().parent.parent
TIMING = p.Timing(resend=0.1, connect_timeout=20.0, status_after=0.3, lost_after=2.0)


def start_engine(tmp_path, port: int = 0, name: str = "engine") -> tuple[subprocess.Popen, int]:
    port_file = tmp_path / f"{name}.port"
    port_file.unlink(missing_ok=True)
    log = open(tmp_path / f"{name}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(port), "--port-file",
                                str(port_file), "--render-dir", str(tmp_path / "renders")],
                               cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while not port_file.exists():
        assert process.poll() is None, (tmp_path / f"{name}.log").read_text()
        assert time.monotonic() < deadline, "the engine did not start"
        time.sleep(0.05)
    return process, int(port_file.read_text())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_engine_cleanly(tmp_path, sig):
    process, port = start_engine(tmp_path)
    with EngineClient(port=port, timing=TIMING) as client:
        assert client.ping()["queued"] == 0
    process.send_signal(sig)
    assert process.wait(30) == 0
    log = (tmp_path / "engine.log").read_text()
    assert "stopping" in log and "stopped" in log and "Traceback" not in log


def test_killed_mid_render_leaves_no_partial_file_and_the_client_recovers(tmp_path):
    process, port = start_engine(tmp_path)
    renders = tmp_path / "renders"
    sent = notes(150, step=0.4, length=0.35)  # a minute of audio: seconds of rendering
    events, outcome = [], {}

    def render():
        with EngineClient(port=port, timing=TIMING) as client:
            try:
                outcome["result"] = client.render("killed", "parametric", sent, retries=2, file_name="killed.wav",
                                                  progress=lambda fraction, state: events.append(state),
                                                  on_retry=lambda error: events.append(error.code))
            except EngineError as error:
                outcome["error"] = error

    thread = threading.Thread(target=render)
    thread.start()
    deadline = time.monotonic() + 60
    while "rendering" not in events:
        assert time.monotonic() < deadline and thread.is_alive(), events
        time.sleep(0.01)
    process.kill()
    process.wait(10)
    assert not (renders / "killed.wav").exists()
    assert [f.name for f in renders.iterdir()] == [".tmp"]  # nothing half-written is visible
    while p.ENGINE_LOST not in events:  # the client notices and reports it
        assert thread.is_alive(), outcome
        time.sleep(0.05)
    restarted, _ = start_engine(tmp_path, port=port, name="restarted")
    try:
        thread.join(120)
        assert "error" not in outcome, outcome
        assert outcome["result"].path == str(renders / "killed.wav") and (renders / "killed.wav").exists()
    finally:
        restarted.terminate()
        restarted.wait(30)
