"""The engine service's render folder (engine/service/output.py): old renders and stale temporary files removed,
an incremental render written by patching a copy of the last file (byte-exact), edits through the service, loud
clips limited."""
import os
import struct
import time

import numpy as np
import pytest
import soundfile as sf

from engine.notes import Clip
from engine.render import LIMIT_CEILING, render_clip, wav_chunks, write_audio
from engine.service.output import patch_wav
from service_fixtures import client_for, notes, running_service


def test_old_renders_and_stale_temporary_files_are_removed(tmp_path):
    folder = tmp_path / "renders"
    (folder / ".tmp").mkdir(parents=True)
    old = time.time() - 100 * 3600
    for name in ("old.wav", "new.wav", "keep.txt", ".tmp/dead.wav"):
        (folder / name).write_bytes(b"x")
    for name in ("old.wav", "keep.txt", ".tmp/dead.wav"):
        os.utime(folder / name, (old, old))
    with running_service(tmp_path):
        pass
    assert sorted(f.name for f in folder.iterdir()) == [".tmp", "keep.txt", "new.wav"]
    assert not list((folder / ".tmp").iterdir())


def test_temporary_files_of_dead_engines_go_at_start_those_of_live_engines_stay(tmp_path):
    temporary = tmp_path / "renders" / ".tmp"
    temporary.mkdir(parents=True)
    (temporary / "partial.wav").write_bytes(b"RIFF")  # left a moment ago by an engine that was killed
    (temporary / "0badc0de-1234abcd-take.wav").write_bytes(b"RIFF")
    (temporary / "0badc0de.lock").write_bytes(b"")
    with running_service(tmp_path) as first:
        assert [f.name for f in temporary.iterdir()] == [f"{first.engine_id}.lock"]
        writing = [temporary / f"{first.engine_id}-00000000-take.wav",  # files the first engine is writing
                   temporary / f".{first.engine_id}-00000000-take.wav.1a2b3c.wav.part"]
        for path in writing:
            path.write_bytes(b"RIFF")
        first.folder.clean()  # its own sweep leaves them alone
        with running_service(tmp_path) as second:  # and so does a second engine on the same folder
            second.folder.clean()
            assert all(path.exists() for path in writing)
    with running_service(tmp_path):  # once their engine is gone, they go
        assert not any(path.exists() for path in writing)
    assert not list(temporary.iterdir())


def test_an_incremental_render_patches_a_copy_of_the_last_file_byte_exactly(tmp_path):
    rng = np.random.default_rng(0)
    before = rng.standard_normal(48000).astype(np.float32)
    after = before.copy()
    after[1000:2500] += 0.5
    old, patched, fresh = tmp_path / "old.wav", tmp_path / "patched.wav", tmp_path / "fresh.wav"
    write_audio(old, before, 48000, "float")
    write_audio(fresh, after, 48000, "float")
    assert patch_wav(old, patched, after, 1000, 2500)
    assert patched.read_bytes() == fresh.read_bytes() and old.read_bytes() != fresh.read_bytes()
    write_audio(tmp_path / "short.wav", before[:100], 48000, "float")
    write_audio(tmp_path / "pcm.wav", before, 48000, "16")
    assert not patch_wav(tmp_path / "short.wav", patched, after, 0, 10)  # another length
    assert not patch_wav(tmp_path / "pcm.wav", patched, after, 0, 10)  # not float
    assert not patch_wav(tmp_path / "gone.wav", patched, after, 0, 10)
    sf.write(tmp_path / "peak.wav", before, 48000, subtype="FLOAT")  # libsndfile's own: with a PEAK chunk
    assert not patch_wav(tmp_path / "peak.wav", patched, after, 0, 10)  # it would go stale: written whole instead


def test_edits_through_the_service_match_full_renders(tmp_path, parametric):
    sent = notes(40, step=0.3, length=0.35)
    with running_service(tmp_path) as service, client_for(service) as client:
        first = client.render("edit", "parametric", sent, sample_rate=22050)
        controls = dict(first.controls)
        for step, note_id in enumerate(["n5", "n20", "n39"]):
            controls[note_id] = (0.3, 0.2, 0.8, 0.9, 0.9, 0.1)
            edited = [{**n, "controls": controls[n["id"]]} for n in sent]
            if step == 1:
                os.utime(first.path)  # someone touched the last file: written in full instead of patched
            result = client.render("edit", "parametric", edited, sample_rate=22050)
            assert result.mode == "incremental" and note_id in result.rerendered
            audio, _ = sf.read(result.path, dtype="float32")
            full = render_clip(Clip.from_data(edited).checked(), parametric, 22050).audio
            assert np.abs(audio - full).max() < 1e-5
            # patched or not, the file holds the bytes of writing its audio whole
            whole = write_audio(tmp_path / "whole.wav", audio, 22050, "float")
            assert open(result.path, "rb").read() == whole.read_bytes()
            first = result


def test_a_patched_file_says_nothing_stale_about_its_peak(tmp_path):
    quiet = [{**n, "controls": (0.1, 0.1, 0.5, 0.0, 0.5, 0.1)} for n in notes(6, step=0.5, length=0.4)]
    with running_service(tmp_path) as service, client_for(service) as client:
        client.render("peak", "parametric", quiet, sample_rate=16000)
        loud = [dict(n) for n in quiet]
        loud[2]["controls"] = (0.95, 0.1, 0.5, 0.0, 0.5, 0.1)
        result = client.render("peak", "parametric", loud, sample_rate=16000)
    assert result.mode == "incremental"
    data = open(result.path, "rb").read()
    audio, _ = sf.read(result.path, dtype="float32")
    for chunk, offset, size in wav_chunks(data[:4096]):
        if chunk == b"PEAK":  # a peak chunk, if any, holds the file's peak
            assert struct.unpack_from("<f", data, offset + 8)[0] == pytest.approx(np.abs(audio).max())


def test_a_loud_clip_is_limited_with_a_warning_and_edits_stay_exact(tmp_path, parametric):
    loud = [{"id": f"c{i}", "pitch": pitch, "onset": 0.0, "offset": 1.0, "controls": (1.0, 0.2, 0.5, 0.3, 0.8, 0.6)}
            for i, pitch in enumerate([48, 55, 60, 64])]
    loud += [{**n, "controls": (0.6, 0.1, 0.5, 0.2, 0.5, 0.3)} for n in notes(6, step=0.5, length=0.4)]
    for n in loud[4:]:
        n["onset"] += 1.2
        n["offset"] += 1.2
    with running_service(tmp_path) as service, client_for(service) as client:
        flac = client.render("loud-flac", "parametric", loud, sample_rate=22050, file_name="loud.flac")
        first = client.render("loud", "parametric", loud, sample_rate=22050)
        edited = [dict(n) for n in loud]
        edited[1]["controls"] = (0.9, 0.2, 0.5, 0.3, 0.8, 0.6)  # in the limited chord
        edited[5]["controls"] = (0.2, 0.1, 0.5, 0.2, 0.5, 0.3)  # and a quiet note after it
        again = client.render("loud", "parametric", edited, sample_rate=22050)
    written, _ = sf.read(flac.path, dtype="float64")
    assert np.abs(written).max() <= LIMIT_CEILING + 2 ** -23  # nothing clipped in the 24-bit file
    assert any("limiter" in w for w in flac.warnings) and any("limiter" in w for w in first.warnings)
    assert again.mode == "incremental" and any("limiter" in w for w in again.warnings)
    audio, _ = sf.read(again.path, dtype="float32")
    full = render_clip(Clip.from_data(edited).checked(), parametric, 22050).audio
    assert np.abs(audio).max() <= LIMIT_CEILING and np.abs(audio - full).max() < 1e-5
