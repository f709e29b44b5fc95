"""`python -m engine batch`: a library of MIDI files x presets x rates into an output tree, through engine.runner on a
process pool and on a real local Ray; skipping what is done, re-rendering what changed, naming bad files, and
leaving nothing partial when interrupted."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, slow_writer_env, write_midi
from engine.cli import main


def library(folder: Path) -> Path:
    """Two short clips, one in a subfolder."""
    (folder / "sub").mkdir(parents=True)
    write_midi(folder / "a.mid", [(73, [(60, 0, 1, 100), (64, 1, 2, 90)])])
    write_midi(folder / "sub" / "b.mid", [(71, [(55, 0, 0.5, 100), (57, 0.5, 1, 90), (59, 1, 2, 80)])])
    return folder


def batch(*args, capsys=None):
    """Run `batch` in this process -> (exit status, stdout, stderr)."""
    status = main(["batch", *map(str, args), "-q"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def stats(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_the_pool_and_ray_write_the_same_bytes_as_render(tmp_path, local_ray, capsys):
    lib = library(tmp_path / "lib")
    status, out, _ = batch(lib, "--presets", "parametric,flute", "--out", tmp_path / "pool", "--sample-rate", 16000,
                           "--jobs", 2, capsys=capsys)
    assert status == 0 and "rendered 4, skipped 0" in out
    pool = tree(tmp_path / "pool")
    assert sorted(pool) == [f"{p}/16000/{name}" for p in ("flute", "parametric")
                            for name in ("a.wav", "a.wav.json", "sub/b.wav", "sub/b.wav.json")]
    status, out, _ = batch(lib, "--presets", "parametric,flute", "--out", tmp_path / "ray", "--sample-rate", 16000,
                           "--ray", capsys=capsys)
    assert status == 0 and "rendered 4" in out
    on_ray = tree(tmp_path / "ray")
    assert {k: v for k, v in on_ray.items() if k.endswith(".wav")} == {k: v for k, v in pool.items()
                                                                       if k.endswith(".wav")}
    # The render command, on one thread as every batch task runs (neural presets differ in the last bit otherwise).
    single = tmp_path / "single.wav"
    r = subprocess.run([sys.executable, "-m", "engine", "render", str(lib / "sub" / "b.mid"), "-o", str(single),
                        "--preset", "flute", "--sample-rate", "16000", "-q"], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert single.read_bytes() == pool["flute/16000/sub/b.wav"]


def test_a_rerun_skips_what_is_done_and_renders_what_changed(tmp_path, capsys):
    lib = library(tmp_path / "lib")
    out = tmp_path / "out"
    args = (lib, "--presets", "parametric", "--out", out, "--sample-rate", "16000,22050", "--jobs", 1)
    status, printed, _ = batch(*args, capsys=capsys)
    assert status == 0 and "rendered 4, skipped 0" in printed
    before = stats(out)
    status, printed, _ = batch(*args, capsys=capsys)
    assert status == 0 and "rendered 0, skipped 4" in printed
    assert stats(out) == before  # not rewritten: same inodes and mtimes

    write_midi(lib / "a.mid", [(73, [(62, 0, 1, 100), (64, 1, 2, 90)])])  # a changed input
    old_a = (out / "parametric/16000/a.wav").read_bytes()
    damaged = out / "parametric/22050/sub/b.wav"
    damaged.write_bytes(damaged.read_bytes()[:100])  # an output that is not what its sidecar describes
    status, printed, _ = batch(*args, capsys=capsys)
    assert status == 0 and "rendered 3, skipped 1" in printed
    after = stats(out)
    assert after["parametric/16000/sub/b.wav"] == before["parametric/16000/sub/b.wav"]
    assert (out / "parametric/16000/a.wav").read_bytes() != old_a
    assert len(damaged.read_bytes()) > 1000
    status, printed, _ = batch(*args[:-2], "--bits", "16", "--jobs", 1, capsys=capsys)  # another bit depth
    assert status == 0 and "rendered 4, skipped 0" in printed


def test_a_bad_midi_file_is_named_and_the_rest_complete(tmp_path, capsys):
    lib = library(tmp_path / "lib")
    (lib / "sub" / "broken.mid").write_bytes(b"not a MIDI file")
    status, printed, err = batch(lib, "--presets", "parametric", "--out", tmp_path / "out", "--sample-rate", 16000,
                                 "--jobs", 1, capsys=capsys)
    assert status == 1 and "rendered 2, skipped 0 (already done), failed 1" in printed
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors[0].startswith(f"error: {lib / 'sub' / 'broken.mid'} (parametric, 16000 Hz): cannot read MIDI file")
    assert errors[1] == "error: 1 of 3 outputs failed (each named above); the others are done"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.wav")) == ["a.wav", "b.wav"]


def closed_port() -> int:
    """A local TCP port nothing listens on (just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_argument_errors_answer_without_importing_torch(tmp_path):
    lib = library(tmp_path / "lib")
    (tmp_path / "empty").mkdir()
    (tmp_path / "clash").mkdir()
    write_midi(tmp_path / "clash" / "a.midi", [(73, [(60, 0, 1, 100)])])
    out = str(tmp_path / "out")
    cases = [
        ([str(tmp_path / "missing.mid"), "--presets", "parametric"], "no such MIDI file or folder"),
        ([str(tmp_path / "empty"), "--presets", "parametric"], "no .mid or .midi files in"),
        ([str(lib), "--presets", "parametric,nope"], "unknown preset 'nope'"),
        ([str(lib), "--presets", ","], "--presets wants one or more preset names"),
        ([str(lib), "--presets", "flute", "--sample-rate", "48000,8000"], "sample rate 8000 is not supported"),
        ([str(lib), "--presets", "flute", "--sample-rate", "fast"], "--sample-rate wants rates in Hz"),
        ([str(lib), "--presets", "flute", "--jobs", "0"], "--jobs must be at least 1"),
        ([str(lib), str(tmp_path / "clash"), "--presets", "flute"], "would both render to"),
        ([str(lib), "--presets", "flute", "--ray-address", f"127.0.0.1:{closed_port()}"],
         "cannot reach the Ray cluster at 127.0.0.1:"),
    ]
    code = ("import json, sys; from engine.cli import main\n"
            "for args in json.loads(sys.argv[1]):\n"
            "    print(main(['batch', *args, '--out', sys.argv[2]]))\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, json.dumps([args for args, _ in cases]), out], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["1"] * len(cases) + ["False"], r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == len(cases)
    for line, (_, message) in zip(lines, cases):
        assert line.startswith("error: ") and message in line, line
    assert not Path(out).exists()


def start_batch(lib: Path, out: Path, tmp_path: Path, jobs: int) -> tuple[subprocess.Popen, Path]:
    """A batch in its own process group whose audio writes stop half-way (conftest.SLOW_WRITER); -> (process, mark)
    once one write has started."""
    env = slow_writer_env(tmp_path)
    mark = Path(env["DDSP_TEST_WRITE_MARK"])
    mark.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "engine", "batch", str(lib), "--presets", "parametric", "--out",
                                str(out), "--sample-rate", "16000", "--jobs", str(jobs), "-q"], cwd=ROOT,
                               env={**os.environ, **env}, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while not mark.exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the batch did not start writing within 240 s"
        time.sleep(0.05)
    return process, mark


def test_an_interrupted_batch_leaves_no_partial_file_and_a_rerun_completes(tmp_path, capsys):
    lib = library(tmp_path / "lib")
    out = tmp_path / "out"
    # Ctrl-C in a terminal: SIGINT to the whole process group; the running writes remove their temporary files.
    process, mark = start_batch(lib, out, tmp_path, jobs=2)
    half_written = Path(mark.read_text())
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(120) == 130
    assert "error: interrupted" in process.stderr.read().decode()
    process.stderr.close()
    assert not half_written.exists()
    assert [p for p in out.rglob("*") if p.is_file()] == []

    # Killed outright: its temporary file stays, hidden; the output name never holds a partial file.
    process, mark = start_batch(lib, out, tmp_path, jobs=1)
    half_written = Path(mark.read_text())
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(60)
    process.stderr.close()
    assert half_written.exists() and half_written.name.startswith(".")
    assert not [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]

    status, printed, _ = batch(lib, "--presets", "parametric", "--out", out, "--sample-rate", 16000, "--jobs", 1,
                               capsys=capsys)
    assert status == 0 and "rendered 2, skipped 0" in printed
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "parametric/16000/a.wav", "parametric/16000/a.wav.json", "parametric/16000/sub/b.wav",
        "parametric/16000/sub/b.wav.json"]  # the stale temporary file is gone too
