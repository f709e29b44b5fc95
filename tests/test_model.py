import numpy as np
import pytest
import torch

from engine.expression import extract_controls, vibrato
from engine.model import (ExpressionNet, NeuralExpression, NeuralSynthesis, SynthesisNet, load_networks,
                          project_amplitude, save_weights, vibrato_reading)
from engine.notes import Note
from engine.params import frames_for
from engine.synthesis import midi_to_hz

NOTES = [Note(60, 0.1, 0.9, 90), Note(64, 0.9, 1.5, 80), Note(67, 1.7, 2.0, 100), Note(72, 2.0, 3.2, 70)]
LONG = [0, 1, 3]  # notes long enough for every control to be defined (vibrato needs > 50 frames)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return NeuralSynthesis(SynthesisNet(channels=32, dilations=[1, 2, 4]), 8000.0)


def test_generated_parameters_carry_the_asked_controls(generator):
    # An untrained network: the control projection alone must make every control read back as asked.
    controls = torch.tensor(np.random.default_rng(1).uniform(0.05, 0.95, (4, 6)), dtype=torch.float32)
    controls[:, 4] = torch.tensor([0.2, 0.3, 0.25, 0.15])  # brightness reachable at these pitches
    params = generator.generate(NOTES, controls, frames_for(3.3))
    measured = extract_controls(params, NOTES, clip=False)
    for i in LONG:
        assert measured[i, [0, 1, 3, 4, 5]].tolist() == pytest.approx(controls[i, [0, 1, 3, 4, 5]].tolist(), abs=2e-3)
        assert float(measured[i, 2]) == pytest.approx(float(controls[i, 2]), abs=0.025)
    assert float(measured[2, 3]) == 0.0  # 0.3 s note: vibrato is not defined (reads 0)


def test_parameters_are_well_formed_and_deterministic(generator):
    controls = torch.full((4, 6), 0.4)
    a = generator.generate(NOTES, controls, 850)
    b = generator.generate(NOTES, controls, 850)
    for x, y in zip((a.f0, a.amplitude, a.harmonics, a.noise), (b.f0, b.amplitude, b.harmonics, b.noise)):
        assert torch.equal(x, y)
    assert a.f0.shape == (850,) and a.harmonics.shape == (850, 60) and a.noise.shape == (850, 65)
    sounding = a.amplitude > 0
    assert torch.allclose(a.harmonics[sounding].sum(-1), torch.ones(int(sounding.sum())), atol=1e-4)
    assert float(a.amplitude[int(1.55 * 250)]) == 0.0  # rest between notes 2 and 3
    assert float(a.f0[int(1.55 * 250)]) == pytest.approx(midi_to_hz(64.0), rel=1e-4)  # pitch held in the rest
    audible = a.f0[:, None] * torch.arange(1, 61) < 8000.0
    assert float(a.harmonics[~audible].abs().max()) == 0.0


def test_vibrato_reading_matches_engine_definition():
    t = np.arange(300) / 250.0
    deviation = 0.3 * np.sin(2 * np.pi * 5.0 * t) + 0.05 * t
    f0 = torch.tensor(midi_to_hz(69.0) * 2 ** (deviation / 12), dtype=torch.float64)
    assert vibrato_reading(deviation) == pytest.approx(vibrato(f0, 69), rel=1e-5)


def test_amplitude_projection_peak_and_statistics():
    curve = np.linspace(-30, -10, 200)  # rising: peak at the end
    out = project_amplitude(curve, volume=0.6, fluctuation=0.2, peak=0.3)
    assert out.mean() == pytest.approx((0.6 - 1) * 60)
    assert out.std() == pytest.approx(0.2 * 24)
    assert abs(int(np.argmax(out)) / 200 - 0.3) <= 0.02


def test_a_steady_note_keeps_its_attack_when_its_peak_moves():
    """A fast attack and a steady sustain: asking for the loudest frame mid-note adds a small bump there instead of
    stretching the attack over half the note (which made every note a swell)."""
    rng = np.random.default_rng(0)
    curve = np.concatenate([np.linspace(-40, -12, 5), -12 + rng.normal(0, 0.3, 245)])  # 20 ms attack, 1 s sustain
    for peak in (0.1, 0.5, 0.9):
        out = project_amplitude(curve, volume=0.8, fluctuation=0.07, peak=peak)
        assert abs(int(np.argmax(out)) / 250 - peak) <= 0.02
        assert out.mean() == pytest.approx((0.8 - 1) * 60) and out.std() == pytest.approx(0.07 * 24)
        assert int(np.argmax(out >= out.max() - 6)) <= 5  # within 6 dB of the top by the end of the attack
    # a swell asked for with a large spread still moves the whole curve
    swell = project_amplitude(curve, volume=0.8, fluctuation=0.4, peak=0.9)
    assert int(np.argmax(swell >= swell.max() - 6)) > 100


def test_expression_generator_range_and_weights_roundtrip(tmp_path):
    torch.manual_seed(0)
    synthesis, expression = SynthesisNet(channels=16, dilations=[1]), ExpressionNet(hidden=8)
    save_weights(tmp_path / "model.pt", synthesis, expression)
    synthesis2, expression2 = load_networks(tmp_path / "model.pt")
    controls = NeuralExpression(expression).generate(NOTES)
    assert controls.shape == (4, 6) and float(controls.min()) >= 0 and float(controls.max()) <= 1
    assert torch.equal(controls, NeuralExpression(expression2).generate(NOTES))
    a = NeuralSynthesis(synthesis, 8000.0).generate(NOTES, controls, 850)
    b = NeuralSynthesis(synthesis2, 8000.0).generate(NOTES, controls, 850)
    assert torch.equal(a.amplitude, b.amplitude) and torch.equal(a.harmonics, b.harmonics)


def test_legato_joins_are_bridged_and_only_they():
    from engine.model import LEGATO_MAX_DIP_DB, bridge_legato
    from engine.params import SynthParams

    n_frames = 500
    amplitude = torch.full((n_frames,), 0.1)
    amplitude[245:255] = 0.1 * 10 ** (-30 / 20)  # a 30 dB hole at the join (1.0 s)
    params = SynthParams(torch.full((n_frames,), 440.0), amplitude, torch.ones(n_frames, 60) / 60,
                         torch.full((n_frames, 65), 0.001), 20000.0)
    dip = lambda p: 20 * np.log10(0.1 / float(p.amplitude[240:262].min()))  # noqa: E731
    legato = [Note(69, 0.2, 1.0, 80, id="a"), Note(71, 1.0, 1.8, 80, id="b")]
    bridged = bridge_legato(params, legato)
    assert dip(bridged) == pytest.approx(LEGATO_MAX_DIP_DB, abs=0.01)
    assert torch.equal(bridged.amplitude[:200], params.amplitude[:200])  # nothing else moves
    assert float(bridged.noise[250, 0]) > float(params.noise[250, 0])  # the noise moves with it
    detached = [Note(69, 0.2, 0.95, 80, id="a"), Note(71, 1.0, 1.8, 80, id="b")]
    repeated = [Note(69, 0.2, 1.0, 80, id="a"), Note(69, 1.0, 1.8, 80, id="b")]
    assert bridge_legato(params, detached) is params and bridge_legato(params, repeated) is params


def test_linear_reading_is_the_vibrato_reading_of_the_sum():
    """The projection solves the vibrato gain from two spectra made once: the same reading as measuring the sum."""
    from engine.model import linear_reading

    rng = np.random.default_rng(4)
    for n in (97, 250, 613):  # long enough to have a reading (project_vibrato checks that first)
        base = 0.05 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n)
        direction = 0.1 * np.sin(2 * np.pi * 5.5 * np.arange(n) / 250)
        reading = linear_reading(base, direction)
        for g in (0.0, 0.3, 1.0, 7.5):
            assert reading(g) == pytest.approx(vibrato_reading(base + g * direction), rel=1e-9, abs=1e-12)
