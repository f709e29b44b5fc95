"""Train -> checkpoint -> resume -> evaluate -> load by name -> render, on a tiny synthetic dataset (seconds)."""
import json

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.notes import Clip
from engine.synthesis import midi_to_hz
from listening import assert_listenable


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from engine.training.train import write_synthetic_dataset

    root = tmp_path_factory.mktemp("neural")
    data = write_synthetic_dataset(root / "data", n_pieces=3, seconds=3.0, seed=3)
    args = ["train", "--instrument", "tiny", "--data", str(data), "--out", str(root / "presets" / "tiny"),
            "--runs", str(root / "runs"), "--tiny", "--checkpoint-every", "3", "--steps", "4", "-q"]
    assert main(args + ["--spectral-steps", "2"]) == 0  # 4 regression steps, then 2 through the synthesizer
    first = torch.load(root / "runs" / "checkpoint.pt", weights_only=False)
    assert main(args + ["--spectral-steps", "5", "--resume"]) == 0
    return root, first


def test_resume_continues_the_step_count(trained):
    root, first = trained
    assert first["step"] == 6
    state = torch.load(root / "runs" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 9
    log = (root / "runs" / "train.log").read_text()
    assert "resume at step 6" in log and "step 9" in log and "spectral" in log
    meta = json.loads((root / "presets" / "tiny" / "preset.json").read_text())
    assert meta["kind"] == "neural" and meta["training"]["steps"] == 9 and meta["program"] == 73


def test_same_seed_same_weights(tmp_path, trained):
    root, _ = trained
    weights = []
    for run in ("a", "b"):
        assert main(["train", "--instrument", "tiny", "--data", str(root / "data"), "--out", str(tmp_path / run),
                     "--runs", str(tmp_path / f"runs-{run}"), "--tiny", "--steps", "3", "-q"]) == 0
        weights.append(torch.load(tmp_path / f"runs-{run}" / "checkpoint.pt", weights_only=False)["synthesis"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_evaluate_writes_metrics_and_preset_renders_by_name(trained, monkeypatch):
    root, _ = trained
    docs = root / "presets.md"
    assert main(["evaluate", str(root / "presets" / "tiny"), "--docs", str(docs), "--fidelity-notes", "2"]) == 0
    metrics = json.loads((root / "presets" / "tiny" / "preset.json").read_text())["metrics"]
    for key in ("spectral_distance_db", "baseline_spectral_distance_db", "improvement_over_baseline",
                "f0_error_cents_median", "loudness_error_db_median"):
        assert np.isfinite(metrics["reconstruction"][key])
    assert set(metrics["control_fidelity"]) >= {"volume", "brightness", "attack_noise", "notes"}
    assert metrics["expression"]["mse"] >= 0 and "targets_met" in metrics
    assert "| tiny |" in docs.read_text()

    monkeypatch.setenv("DDSP_PRESETS_PATH", str(root / "presets"))
    from engine.presets import load_preset
    from engine.render import render_clip

    preset = load_preset("tiny")
    assert preset.kind == "neural" and preset.synthesis.max_hz == 8000.0
    clip = Clip.from_data([{"pitch": 62, "onset": 0.1, "offset": 1.1, "velocity": 90},
                           {"pitch": 69, "onset": 1.3, "offset": 2.3, "velocity": 100}])
    a = render_clip(clip, preset, 48000).audio
    b = render_clip(clip, preset, 48000).audio
    assert a.tobytes() == b.tobytes()
    assert_listenable(a, 48000, [(0.3, 1.0, midi_to_hz(62.0)), (1.5, 2.2, midi_to_hz(69.0))])


def test_train_reports_a_missing_dataset(tmp_path, capsys):
    assert main(["train", "--instrument", "x", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "p"),
                 "--runs", str(tmp_path / "r"), "--tiny", "--steps", "1", "-q"]) == 1
    assert "no dataset" in capsys.readouterr().err


def test_negative_step_counts_are_refused(tmp_path, capsys):
    for flag in ("--steps", "--spectral-steps", "--adversarial-steps"):
        assert main(["train", "--instrument", "x", "--data", str(tmp_path), flag, "-1", "-q"]) == 1
        assert "--adversarial-steps must be 0 or more" in capsys.readouterr().err


def test_refresh_of_a_folder_that_is_not_a_dataset_says_so(tmp_path, capsys):
    from engine.training.refresh import main as refresh

    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "build.json").write_text("{}")
    assert refresh([str(tmp_path / "nothing")]) == 1
    assert refresh([str(tmp_path / "half")]) == 1
    err = capsys.readouterr().err
    assert "is not a dataset: no meta.json" in err and "incomplete build" in err


def test_expression_only_retrains_the_expression_generator_and_keeps_the_synthesis(tmp_path, trained):
    root, _ = trained
    runs = tmp_path / "runs"
    args = ["train", "--instrument", "tiny", "--data", str(root / "data"), "--out", str(tmp_path / "p"),
            "--runs", str(runs), "--tiny", "--steps", "3", "--spectral-steps", "0", "-q"]
    assert main(args + ["--expression-only"]) == 1  # nothing trained yet
    assert main(args) == 0
    before = torch.load(runs / "checkpoint.pt", weights_only=False)
    assert main(args + ["--expression-only", "--seed", "5"]) == 0
    after = torch.load(runs / "checkpoint.pt", weights_only=False)
    assert after["step"] == before["step"] == 3
    assert all(torch.equal(before["synthesis"][k], after["synthesis"][k]) for k in before["synthesis"])
    assert any(not torch.equal(before["expression"][k], after["expression"][k]) for k in before["expression"])
    assert "(expression only)" in (runs / "train.log").read_text()


def test_expression_only_refuses_an_unfinished_checkpoint(tmp_path, trained, capsys):
    root, _ = trained
    args = ["train", "--instrument", "tiny", "--data", str(root / "data"), "--out", str(tmp_path / "p"),
            "--runs", str(tmp_path / "runs"), "--tiny", "--steps", "3", "-q"]
    assert main(args + ["--spectral-steps", "0"]) == 0
    assert main(args + ["--spectral-steps", "4", "--expression-only"]) == 1
    assert "at step 3 of 7" in capsys.readouterr().err


def test_expression_generator_learns_what_the_notes_predict(tmp_path):
    """Controls that follow the notes (volume = velocity, peak position = where the note starts in its phrase) are
    learned well below the mean predictor's error on the piece held aside (never trained on)."""
    from engine.training.train import (TrainConfig, expression_error, load_dataset, prepare_piece,
                                       train_expression, write_synthetic_dataset)

    _, pieces = load_dataset(write_synthetic_dataset(tmp_path, n_pieces=6, seconds=6.0, seed=11))
    prepared = [prepare_piece(p) for p in pieces.values()]  # the sixth is held aside
    for piece in prepared:
        piece.controls = piece.controls.clone()
        piece.controls[:, 0] = piece.note_features[:, 2]
        piece.controls[:, 2] = piece.note_features[:, 14]
    config = TrainConfig(instrument="tiny", data="", out="", expression_steps=300, expression_hidden=16,
                         expression_batch=4, expression_notes=16)
    net = train_expression(config, prepared)
    held = prepared[5]
    mean = torch.cat([p.controls for p in prepared[:5]]).mean(0)
    with torch.no_grad():
        predicted = net(held.note_features[None])[0]
    learnable = [0, 2]  # the other four are random
    error = float(((predicted - held.controls)[:, learnable] ** 2).mean())
    mean_error = float(((mean - held.controls)[:, learnable] ** 2).mean())
    assert error < 0.5 * mean_error
    assert expression_error(net, [held]) < float(((mean - held.controls) ** 2).mean())


def test_adversarial_fine_tune_trains_a_discriminator_and_resumes(tmp_path, trained):
    root, _ = trained
    runs = tmp_path / "runs"
    args = ["train", "--instrument", "tiny", "--data", str(root / "data"), "--out", str(tmp_path / "p"),
            "--runs", str(runs), "--tiny", "--steps", "2", "--spectral-steps", "1", "--checkpoint-every", "4", "-q"]
    assert main(args + ["--adversarial-steps", "4"]) == 0
    first = torch.load(runs / "checkpoint.pt", weights_only=False)
    assert first["step"] == 7 and first["discriminator"] is not None
    assert main(args + ["--adversarial-steps", "6", "--resume"]) == 0
    second = torch.load(runs / "checkpoint.pt", weights_only=False)
    assert second["step"] == 9
    assert any(not torch.equal(first["discriminator"][k], second["discriminator"][k]) for k in first["discriminator"])
    log = (runs / "train.log").read_text()
    assert "adversarial" in log and "discriminator" in log and "feature_matching" in log
