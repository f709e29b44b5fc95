"""Instrument presets: a folder `presets/<name>/` holding `preset.json` (and weights for neural presets).

A preset supplies an expression generator (notes -> controls), a synthesis generator (notes + controls -> frame
parameters) and a reverb. Kinds: `parametric` (rule-based baseline, engine.synthesis) and `neural` (trained
generators, engine.model). Presets are found by name in the folders of `$DDSP_PRESETS_PATH` (os.pathsep-separated),
then in the repository's `presets/`, never in the working directory; a path to a preset folder (with a slash:
`./mine`, `/data/presets/mine`) works too.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # finding presets needs no torch (the CLI checks names before the engine loads)
    from .dsp import Reverb
    from .expression import ExpressionGenerator
    from .synthesis import SynthesisGenerator

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "presets"


class PresetError(ValueError):
    """Unknown or broken preset; the message says which and why."""


@dataclass
class Preset:
    name: str
    kind: str
    description: str
    expression: ExpressionGenerator
    synthesis: SynthesisGenerator
    reverb: Reverb
    meta: dict = field(default_factory=dict)
    path: Path | None = None


def preset_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("DDSP_PRESETS_PATH", "").split(os.pathsep) if p]
    return extra + [BUILTIN_DIR]


def find_preset(name: str) -> Path:
    """The folder of the preset called `name`, looked up in preset_dirs() only (never in the working directory: a
    folder there must not shadow a shipped preset); a path (holding a slash) names a preset folder directly."""
    if "/" in name or "\\" in name:
        candidate = Path(name)
        if (candidate / "preset.json").is_file():
            return candidate
    elif name and not name.startswith("."):
        for folder in preset_dirs():
            if (folder / name / "preset.json").is_file():
                return folder / name
    known = ", ".join(p["name"] for p in list_presets()) or "none"
    raise PresetError(f"unknown preset {name!r} (known: {known})")


def list_presets() -> list[dict]:
    """Name, kind, description, instrument and GM program of every preset found, sorted by name."""
    found = {}
    for folder in preset_dirs():
        if not folder.is_dir():
            continue
        for meta_path in sorted(folder.glob("*/preset.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            name = meta_path.parent.name
            found.setdefault(name, {"name": name, "kind": meta.get("kind", "?"),
                                    "description": meta.get("description", ""),
                                    "instrument": meta.get("instrument"), "program": meta.get("program"),
                                    "path": str(meta_path.parent)})
    return [found[k] for k in sorted(found)]


_cache: dict[str, Preset] = {}


def load_preset(name: str) -> Preset:
    """Load (once per process) the preset called `name`, or the preset folder at path `name`."""
    path = find_preset(name).resolve()
    key = str(path)
    if key not in _cache:
        _cache[key] = _load(path)
    return _cache[key]


def _load(path: Path) -> Preset:
    try:
        meta = json.loads((path / "preset.json").read_text())
    except (OSError, ValueError) as error:
        raise PresetError(f"preset {path.name!r}: cannot read preset.json: {error}") from None
    from .synthesis import ParametricInstrument, RuleExpression

    kind = meta.get("kind")
    try:
        if kind == "parametric":
            expression, synthesis = RuleExpression(), ParametricInstrument(
                meta.get("harmonic_profile"), meta.get("noise_profile"), meta.get("sustain_noise_db", -45.0),
                meta.get("max_hz", 8000.0))
            reverb = synthetic_reverb(**meta.get("reverb", {}))
        elif kind == "neural":
            expression, synthesis, reverb = _load_neural(path, meta)
        else:
            raise PresetError(f"preset {path.name!r}: unknown kind {kind!r}")
    except PresetError:
        raise
    except Exception as error:
        raise PresetError(f"preset {path.name!r} is broken: {error}") from None
    reverb.gain = 10.0 ** (float(meta.get("output_gain_db", 0.0)) / 20.0)  # the level calibration (evaluate)
    return Preset(path.name, kind, meta.get("description", ""), expression, synthesis, reverb, meta, path)


def _load_neural(path: Path, meta: dict):
    """Preset folder + its preset.json -> (NeuralExpression, NeuralSynthesis, Reverb)."""
    from .model import WEIGHTS_FILE, NeuralExpression, NeuralSynthesis, load_networks

    synthesis, expression = load_networks(path / meta.get("weights", WEIGHTS_FILE))
    generator = NeuralSynthesis(synthesis, float(meta["max_hz"]), float(meta.get("vibrato_rate_hz", 5.5)),
                                bridge=bool(meta.get("legato_bridge", False)))
    return NeuralExpression(expression), generator, synthetic_reverb(**meta.get("reverb", {}))


def synthetic_reverb(rt60: float = 1.0, seconds: float = 1.2, wet: float = 0.2, seed: int = 0,
                     sample_rate: int = 16000) -> Reverb:
    """Exponentially decaying noise (unit energy) as a room: the parametric presets' reverb."""
    from .dsp import Reverb

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    ir = rng.standard_normal(t.shape[0]) * np.exp(-6.9 * t / rt60)
    ir /= np.sqrt((ir ** 2).sum())
    return Reverb(ir.astype(np.float32), sample_rate, wet)
