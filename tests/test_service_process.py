"""`python -m engine serve` as a real process: clean shutdown on SIGTERM/SIGINT, a kill mid-render and a kill
mid-write that leave no partial file (and that the client survives once the engine is back), and two engine
processes that render the same bytes from their first render on."""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from daw_bridge import protocol as p
from daw_bridge.client import EngineClient, EngineError
from conftest import slow_writer_env
from service_fixtures import notes, wait_until

ROOT = Path(__file__).resolve().parent.parent
TIMING = p.Timing(resend=0.1, connect_timeout=20.0, status_after=0.3, lost_after=2.0)

def start_engine(tmp_path, port: int = 0, name: str = "engine", render_dir: Path | None = None,
                 env: dict | None = None) -> tuple[subprocess.Popen, int]:
    port_file = tmp_path / f"{name}.port"
    port_file.unlink(missing_ok=True)
    log = open(tmp_path / f"{name}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(port), "--port-file",
                                str(port_file), "--render-dir", str(render_dir or tmp_path / "renders")],
                               cwd=ROOT, stdout=log, stderr=log,
                               env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    wait_until(lambda: port_file.exists() or process.poll() is not None, f"engine {name} to start", 120)
    assert process.poll() is None, (tmp_path / f"{name}.log").read_text()
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
    wait_until(lambda: "rendering" in events or not thread.is_alive(), "the render to start", 60, step=0.01)
    assert "rendering" in events, (events, outcome)
    process.kill()
    process.wait(10)
    assert not (renders / "killed.wav").exists()
    assert [f.name for f in renders.iterdir()] == [".tmp"]  # nothing half-written is visible
    wait_until(lambda: p.ENGINE_LOST in events or not thread.is_alive(), "the client to notice", 60)
    assert p.ENGINE_LOST in events, (events, outcome)  # the client noticed and reported it
    restarted, _ = start_engine(tmp_path, port=port, name="restarted")
    try:
        thread.join(120)
        assert not thread.is_alive(), "the client did not finish within 120 s of the restart"
        assert "error" not in outcome, outcome
        assert outcome["result"].path == str(renders / "killed.wav") and (renders / "killed.wav").exists()
    finally:
        restarted.terminate()
        restarted.wait(30)


def test_killed_while_writing_the_file_leaves_no_partial_file_and_a_restart_clears_it(tmp_path):
    """The kill lands inside the file write itself (a hook stops soundfile half-way): the name the DAW reads never
    holds a partial file, and the next engine removes the half-written temporary file."""
    env = slow_writer_env(tmp_path)
    process, port = start_engine(tmp_path, env=env)
    renders = tmp_path / "renders"
    with EngineClient(port=port, timing=TIMING) as client:
        session = client.start_render("written", "parametric", notes(20), sample_rate=16000, file_name="take.wav")
        try:
            wait_until(lambda: Path(env["DDSP_TEST_WRITE_MARK"]).exists() or process.poll() is not None,
                       "the engine to start writing the file", 120, pump=client.pump)
        finally:
            process.kill()
            process.wait(10)
    half_written = Path(Path(env["DDSP_TEST_WRITE_MARK"]).read_text())
    assert half_written.exists() and half_written.stat().st_size > 1000  # the kill hit the write itself
    assert not (renders / "take.wav").exists()
    assert [f.name for f in renders.iterdir()] == [".tmp"]  # nothing half-written is visible
    assert session.state != "done"
    restarted, port = start_engine(tmp_path, name="restarted")
    try:
        with EngineClient(port=port, timing=TIMING) as client:
            engine_id = client.hello()["engine_id"]
        assert [f.name for f in (renders / ".tmp").iterdir()] == [f"{engine_id}.lock"]  # the leftover is gone
    finally:
        restarted.terminate()
        restarted.wait(30)


def test_two_engine_processes_render_the_same_bytes_from_their_first_render(tmp_path):
    """Same request, same bytes: within a process from its first render on (a neural preset: no lazy set-up
    shows), and between two processes (nothing in the noise or the files depends on the process)."""
    sent = notes(8, step=0.3, length=0.28)
    engines = [start_engine(tmp_path, name=f"e{i}", render_dir=tmp_path / f"renders{i}") for i in range(2)]
    try:
        renders = []
        for _, port in engines:
            with EngineClient(port=port, timing=TIMING) as client:
                renders.append([client.render(f"clip{k}", preset, sent, sample_rate=22050, seed=5, timeout=300)
                                for preset in ("flute", "parametric") for k in range(2)])
    finally:
        for process, _ in engines:
            process.terminate()
            process.wait(30)
    for index in (0, 2):  # flute, parametric
        results = [renders[e][index + k] for e in range(2) for k in range(2)]
        files = [Path(r.path).read_bytes() for r in results]
        assert all(f == files[0] for f in files), [len(f) for f in files]
        assert all(r.controls == results[0].controls for r in results)
