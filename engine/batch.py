"""Render a library: MIDI files or folders x presets x sample rates -> an output tree, one task per output file.

`OUT/<preset>/<rate>/<path relative to the input folder>.wav` (a file given by itself: its name). Each output is
rendered as `python -m engine render FILE --preset PRESET --sample-rate RATE --bits BITS` renders it (the whole
file with that preset, seed 0), through engine.runner (a local pool or Ray). Beside each output a sidecar
`<name>.wav.json` records what made it: the MIDI file's SHA-256, the preset's (every file of its folder), the rate,
the bit depth, the render code's SHA-256 with the library versions, and the output's size and mtime. A re-run skips
an output whose sidecar matches and whose file is the one it describes; anything changed is rendered again.

Planning reads only small files (MIDI, preset folders, sidecars) and imports no torch: bad arguments answer at once.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from daw_bridge import protocol
from daw_bridge.files import stale_parts, write_json_atomic

from . import __version__

MIDI_SUFFIXES = (".mid", ".midi")
MANIFEST_FORMAT = "ddsp-batch-output"
BITS = ("16", "24", "float")
# What a render's bytes depend on besides its input: these modules' source and these libraries' versions.
RENDER_MODULES = ("notes", "expression", "params", "synthesis", "model", "presets", "core", "dsp", "curves", "frames",
                  "render", "stream")
RENDER_LIBRARIES = ("torch", "numpy", "scipy", "soundfile", "soxr", "pretty_midi", "mido")


class BatchError(ValueError):
    """Bad batch arguments (no such input, unknown preset, bad rate); one line."""


@dataclass(frozen=True)
class RenderJob:
    midi: str
    output: str
    preset: str
    sample_rate: int
    bits: str
    manifest: dict  # what the sidecar must say (less the output's size and mtime)


# ------------------------------------------------------------------------------------------------- planning
def midi_files(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(MIDI file, its path relative to the given folder, or its name) for every input, folders searched
    recursively for *.mid / *.midi, sorted."""
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)
            if not files:
                raise BatchError(f"no .mid or .midi files in {item}")
            found += [(p, p.relative_to(path)) for p in files]
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            raise BatchError(f"no such MIDI file or folder: {item}")
    return found


def parse_presets(text: str) -> list[str]:
    """'a,b' -> ['a', 'b'], each a preset that exists (engine.presets.find_preset: no torch)."""
    from .presets import find_preset

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BatchError("--presets wants one or more preset names, comma-separated")
    for name in names:
        find_preset(name)  # PresetError (a ValueError): unknown preset, with the known ones
    return list(dict.fromkeys(names))


def parse_rates(text: str) -> list[int]:
    """'44100,48000' -> [44100, 48000], each a rate the engine renders at."""
    rates = []
    for item in text.split(","):
        try:
            rate = int(item)
        except ValueError:
            raise BatchError(f"--sample-rate wants rates in Hz, comma-separated: got {item!r}") from None
        try:
            protocol.check_sample_rate(rate)
        except ValueError as error:
            raise BatchError(str(error)) from None
        rates.append(rate)
    return list(dict.fromkeys(rates))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def preset_sha256(name: str) -> str:
    """SHA-256 over every file of the preset's folder (names and bytes): weights, preset.json with its level
    calibration and reverb."""
    from .presets import find_preset

    digest = hashlib.sha256()
    for path in sorted(p for p in find_preset(name).iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode() + b"\0" + file_sha256(path).encode())
    return digest.hexdigest()


def render_code() -> dict:
    """The engine's version, the SHA-256 of the render modules' source and the versions of the libraries a render
    runs on: a change to any of them renders everything again."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for module in RENDER_MODULES:
        digest.update(module.encode() + b"\0" + (package / f"{module}.py").read_bytes())
    libraries = {}
    for name in RENDER_LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    return {"version": __version__, "render_code_sha256": digest.hexdigest(), "libraries": libraries}


def manifest_for(midi_digest: str | None, preset: str, preset_digest: str, sample_rate: int, bits: str, code: dict) -> dict:
    return {"format": MANIFEST_FORMAT, "version": 1, "midi_sha256": midi_digest, "preset": preset,
            "preset_sha256": preset_digest, "sample_rate": sample_rate, "bits": bits, "seed": 0, "engine": code}


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def is_done(output: Path, manifest: dict) -> bool:
    """The output exists, is the file its sidecar describes (size, mtime) and was made from the same things."""
    try:
        recorded = json.loads(sidecar_path(output).read_text())
        stat = output.stat()
    except (OSError, ValueError):
        return False
    made = {k: v for k, v in recorded.items() if k != "output"} if isinstance(recorded, dict) else None
    return made == manifest and recorded.get("output") == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def plan(inputs: list[str], presets: list[str], rates: list[int], bits: str, out: str) -> tuple[list[RenderJob], int]:
    """-> (jobs still to render, outputs already done). Raises BatchError when two inputs land on one output."""
    if bits not in BITS:
        raise BatchError(f"--bits must be one of {', '.join(BITS)}")
    files = midi_files(inputs)
    check_distinct_outputs(files, Path(out) / Path(presets[0]).name / str(rates[0]))
    code = render_code()
    digests = {name: preset_sha256(name) for name in presets}
    midi_digests = {midi: readable_sha256(midi) for midi, _ in files}
    jobs, done = [], 0
    for preset in presets:
        for rate in rates:
            for midi, relative in files:
                output = Path(out) / Path(preset).name / str(rate) / relative.with_suffix(".wav")
                manifest = manifest_for(midi_digests[midi], preset, digests[preset], rate, bits, code)
                if is_done(output, manifest):
                    done += 1
                else:
                    jobs.append(RenderJob(str(midi), str(output), preset, rate, bits, manifest))
    return jobs, done


def check_distinct_outputs(files: list[tuple[Path, Path]], folder: Path) -> None:
    """BatchError when two MIDI files would render to one output (the same path under every preset and rate;
    `folder` is the first preset's and rate's, named in the message)."""
    claimed: dict[Path, Path] = {}
    for midi, relative in files:
        target = relative.with_suffix(".wav")
        if claimed.setdefault(target, midi) != midi:
            raise BatchError(f"{claimed[target]} and {midi} would both render to {folder / target}: "
                             f"rename one or render them separately")


def readable_sha256(path: Path) -> str | None:
    """file_sha256, or None for a file that cannot be read (its tasks fail with the reason, the others go on)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------- one task
# The task itself is engine.cli.render_batch_output: the render command's own steps, with these around them.
def check_job(job: RenderJob) -> None:
    """Before a worker renders: refuse when its MIDI file, preset or engine differ from what was planned (a cluster
    node with another version), and remove what a killed render of this output left."""
    here = manifest_for(file_sha256(Path(job.midi)), job.preset, preset_sha256(job.preset), job.sample_rate,
                        job.bits, render_code())
    for key, what in (("midi_sha256", "MIDI file"), ("preset_sha256", "preset"), ("engine", "engine")):
        if here[key] != job.manifest[key]:
            raise BatchError(f"this worker's {what} differs from the one planned (another version on this node?)")
    remove_stale_parts(Path(job.output))


def remove_stale_parts(output: Path) -> None:
    """Temporary files a killed render of this output left (daw_bridge.files.stale_parts); one batch at a time
    writes an output tree."""
    for stale in stale_parts(output, suffix=output.suffix + ".part"):
        stale.unlink(missing_ok=True)


def write_sidecar(job: RenderJob) -> None:
    """After the output is in place: its sidecar, naming the file by size and mtime."""
    stat = Path(job.output).stat()
    write_json_atomic(sidecar_path(Path(job.output)),
                      {**job.manifest, "output": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}})


def job_label(job: RenderJob) -> str:
    return f"{job.midi} ({job.preset}, {job.sample_rate} Hz)"


def summary_line(rendered: int, skipped: int, failed: int, out: str) -> str:
    return f"{out}: rendered {rendered}, skipped {skipped} (already done){f', failed {failed}' if failed else ''}"
