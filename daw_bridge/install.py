"""`python -m daw_bridge install <daw> ...`: copy a DAW's script into the folder where the DAW looks for scripts,
with the pure-Python protocol modules it imports (copied from this installed package at install time, so the
repository holds them once).

Each DAW adds a self-contained installer to `INSTALLERS` with `@installer(name, help, add_arguments)`; the
installer returns the text to print. Errors are `InstallError` (one line; the CLI prints `error: ...`).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

PACKAGE = Path(__file__).resolve().parent  # the installed daw_bridge package
PROTOCOL_MODULES = ("osc.py", "protocol.py")  # what DAW scripts import from daw_bridge: standard library only

INSTALLERS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], str]]] = {}


class InstallError(ValueError):
    pass


def installer(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    def register(run: Callable[[argparse.Namespace], str]):
        INSTALLERS[name] = (help, add_arguments, run)
        return run
    return register


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `install` command's arguments: one sub-command per DAW."""
    sub = parser.add_subparsers(dest="daw", required=True, metavar="DAW")
    for name, (help_text, add, run) in INSTALLERS.items():
        daw = sub.add_parser(name, help=help_text)
        add(daw)
        daw.set_defaults(install=run)


def run(args: argparse.Namespace) -> None:
    print(args.install(args))


# ---------------------------------------------------------------------------------------------------- shared

def vendor_protocol(target: Path) -> None:
    """Write `target/daw_bridge/` holding this package's protocol modules (and a minimal __init__.py). Refuses if
    one of them imports anything but the standard library and each other."""
    names = {Path(m).stem for m in PROTOCOL_MODULES}
    for module in PROTOCOL_MODULES:
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                wanted = {(node.module or alias.name).split(".")[0] for alias in node.names}
                if not wanted <= names:
                    raise InstallError(f"daw_bridge/{module} imports {sorted(wanted - names)}, which DAW scripts lack")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                roots = {alias.name.split(".")[0] for alias in node.names} if isinstance(node, ast.Import) else \
                    {(node.module or "").split(".")[0]}
                foreign = {r for r in roots if r not in sys.stdlib_module_names and r != "__future__"}
                if foreign:
                    raise InstallError(f"daw_bridge/{module} imports {sorted(foreign)}, which DAW scripts lack")
    folder = target / "daw_bridge"
    folder.mkdir(parents=True)
    (target / "__init__.py").write_text('"""Copied by `python -m daw_bridge install`; do not edit."""\n')
    from . import __version__

    (folder / "__init__.py").write_text(f'"""daw_bridge {__version__}: the engine protocol, copied by `python -m '
                                        f'daw_bridge install`."""\n__version__ = "{__version__}"\n')
    for module in PROTOCOL_MODULES:
        shutil.copyfile(PACKAGE / module, folder / module)


def replace_folder(staged: Path, target: Path) -> None:
    """Put the finished folder `staged` at `target` (same file system), removing what was there."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=staged.parent))
        os.replace(target, old / target.name)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- Ableton Live

ABLETON_SCRIPT = "DDSPInstrument"
ABLETON_SETTINGS = {"host": "host", "port": "port", "preset": "preset", "sample_rate": "sample_rate"}


def ableton_user_library() -> Path | None:
    """Live's default User Library: ~/Music/Ableton/User Library (macOS), ~/Documents/Ableton/User Library
    (Windows); None elsewhere (Live runs on neither Linux nor BSD)."""
    if sys.platform == "darwin":
        return Path.home() / "Music" / "Ableton" / "User Library"
    if sys.platform.startswith("win"):
        return Path.home() / "Documents" / "Ableton" / "User Library"
    return None


def ableton_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-library", metavar="DIR",
                        help="Live's User Library (Live: Settings > Library > Location of User Library); default "
                             "~/Music/Ableton/User Library (macOS), ~/Documents/Ableton/User Library (Windows)")
    parser.add_argument("--host", help="engine host the script talks to (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="engine UDP port (default 9718)")
    parser.add_argument("--preset", help="preset for racks whose name does not name one (default parametric)")
    parser.add_argument("--sample-rate", type=int, help="sample rate of the rendered files (default 48000)")


@installer("ableton", "Ableton Live 12: the DDSPInstrument Remote Script", ableton_arguments)
def install_ableton(args: argparse.Namespace) -> str:
    library = Path(args.user_library).expanduser() if args.user_library else ableton_user_library()
    if library is None:
        raise InstallError("Ableton Live runs on macOS and Windows: pass --user-library DIR (Live's User Library)")
    if not library.is_dir():
        raise InstallError(f"no User Library at {library}: start Live once, or pass --user-library DIR (Live: "
                           f"Settings > Library > Location of User Library)")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise InstallError(f"--port {args.port} is outside 1..65535")
    if args.sample_rate is not None and not 16000 <= args.sample_rate <= 96000:
        raise InstallError(f"--sample-rate {args.sample_rate} is outside 16000..96000")
    source = PACKAGE / "ableton" / ABLETON_SCRIPT
    scripts = library / "Remote Scripts"
    target = scripts / ABLETON_SCRIPT
    settings = {}
    if (target / "config.json").exists():  # keep the producer's settings across re-installs
        try:
            settings = json.loads((target / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            settings = {}
        settings = settings if isinstance(settings, dict) else {}
    for key, option in ABLETON_SETTINGS.items():
        if getattr(args, option) is not None:
            settings[key] = getattr(args, option)
    scripts.mkdir(exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{ABLETON_SCRIPT}-new-", dir=scripts.parent))
    try:
        folder = staged / ABLETON_SCRIPT
        folder.mkdir()
        for path in sorted(source.glob("*.py")):
            shutil.copyfile(path, folder / path.name)
        vendor_protocol(folder / "vendor")
        (folder / "config.json").write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        replace_folder(folder, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "defaults"
    return (f"installed the {ABLETON_SCRIPT} Remote Script in {target} (config.json: {shown})\n"
            f"next: start the engine (`python -m engine serve`), restart Live, and in Settings > Link, Tempo & MIDI "
            f"pick {ABLETON_SCRIPT} as a Control Surface (Input and Output: None); see docs/ableton.md")
