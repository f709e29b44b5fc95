"""The engine service's render folder (engine/service/output.py): old renders and stale temporary files removed,
an incremental render written by patching a copy of the last file (byte-exact), edits through the service."""
import os
import time

import numpy as np
import soundfile as sf

from engine.notes import Clip
from engine.render import render_clip, write_audio
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
            first = result
