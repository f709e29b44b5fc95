"""`python -m daw_bridge install <daw> ...`: copy a DAW's script into the folder where the DAW looks for scripts,
with the pure-Python protocol modules it imports (copied from this installed package at install time, so the
repository holds them once).

Each DAW adds a self-contained installer to `INSTALLERS` with `@installer(name, help, add_arguments)`; the
installer returns the text to print. Errors are `InstallError` (one line; the CLI prints `error: ...`). This
module registers the `install` command itself (daw_bridge/commands.py).
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

from .commands import command
from .files import write_atomic

PACKAGE = Path(__file__).resolve().parent  # the installed daw_bridge package
# what DAW scripts import from daw_bridge: standard library only
PROTOCOL_MODULES = ("osc.py", "protocol.py", "curves.py", "midi_expression.py")

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


@command("install", "install a DAW's script into the DAW (ableton, ...)", add_arguments)
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


# ---------------------------------------------------------------------------------------------------- REAPER

REAPER_SOURCE = PACKAGE / "reaper"
REAPER_PACKAGE = "ddsp_reaper"  # what the actions import: a package, copied whole
REAPER_JSFX = "ddsp_expression.jsfx"


def reaper_resource_path() -> Path:
    """REAPER's default resource folder: %APPDATA%\\REAPER (Windows), ~/Library/Application Support/REAPER
    (macOS), ~/.config/REAPER (Linux)."""
    if sys.platform.startswith("win"):
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "REAPER"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "REAPER"
    return Path.home() / ".config" / "REAPER"


def reaper_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resource-path", metavar="DIR",
                        help=f"REAPER's resource folder (REAPER: Options > Show REAPER resource path); default "
                             f"{reaper_resource_path()}")
    parser.add_argument("--engine-python", metavar="PYTHON", default=sys.executable,
                        help="the Python the scripts use to start the engine when it is not running (default: the "
                             "one running this command)")
    parser.add_argument("--no-engine-command", action="store_true",
                        help="never let the scripts start the engine: start `python -m engine serve` yourself")
    parser.add_argument("--host", default="127.0.0.1", help="engine host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9718, help="engine UDP port (default 9718)")


def install_reaper_files(resource: Path, engine_python: str | None, host: str = "127.0.0.1",
                         port: int = 9718) -> tuple[Path, Path, dict]:
    """Copy the action scripts, the ddsp_reaper package (its *.py) and the protocol modules into
    <resource>/Scripts/ddsp (replaced as a whole) and the JSFX into <resource>/Effects/ddsp; write
    Scripts/ddsp/ddsp_config.json (the engine's address and, unless `engine_python` is None, the command that starts
    it; other keys a producer added are kept)."""
    if not 1 <= port <= 65535:
        raise InstallError(f"--port {port} is outside 1..65535")
    actions = sorted(REAPER_SOURCE.glob("DDSP - *.py"))
    package = sorted((REAPER_SOURCE / REAPER_PACKAGE).glob("*.py"))
    if not actions or REAPER_SOURCE / REAPER_PACKAGE / "__init__.py" not in package:
        raise InstallError(f"the REAPER scripts are missing from {REAPER_SOURCE}")
    scripts_root, effects = resource / "Scripts", resource / "Effects" / "ddsp"
    target = scripts_root / "ddsp"
    config = {}
    if (target / "ddsp_config.json").exists():
        try:
            config = json.loads((target / "ddsp_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        config = config if isinstance(config, dict) else {}
    config.update(host=host, port=port, engine_command=None, engine_cwd=None)
    if engine_python:
        config["engine_command"] = [str(engine_python), "-m", "engine", "serve", "--host", host, "--port", str(port)]
        config["engine_cwd"] = str(PACKAGE.parent)
    scripts_root.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".ddsp-new-", dir=scripts_root))
    try:
        folder = staged / "ddsp"
        vendor_protocol(folder)  # folder/daw_bridge/: what the ddsp_reaper package imports
        for path in actions:
            shutil.copyfile(path, folder / path.name)
        (folder / REAPER_PACKAGE).mkdir()
        for path in package:
            shutil.copyfile(path, folder / REAPER_PACKAGE / path.name)
        (folder / "ddsp_config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        replace_folder(folder, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    write_atomic(effects / REAPER_JSFX, lambda tmp: shutil.copyfile(REAPER_SOURCE / REAPER_JSFX, tmp))
    return target, effects / REAPER_JSFX, config


@installer("reaper", "REAPER: the DDSP ReaScripts (Python) and the expression JSFX", reaper_arguments)
def install_reaper(args: argparse.Namespace) -> str:
    explicit = args.resource_path is not None
    resource = Path(args.resource_path).expanduser() if explicit else reaper_resource_path()
    if not explicit and not resource.is_dir():
        raise InstallError(f"no REAPER resource folder at {resource}: start REAPER once, or pass --resource-path DIR "
                           f"(REAPER: Options > Show REAPER resource path)")
    if resource.exists() and not resource.is_dir():
        raise InstallError(f"{resource} is not a folder")
    engine_python = None if args.no_engine_command else args.engine_python
    scripts, jsfx, config = install_reaper_files(resource, engine_python, args.host, args.port)
    if config["engine_command"]:
        start = f"the scripts start it when it is not running: {' '.join(config['engine_command'])}"
    else:
        start = f"start it yourself before rendering: python -m engine serve --port {args.port}"
    names = "\n".join(f"     {path.name}" for path in sorted(scripts.glob("DDSP - *.py")))
    return (f"installed the DDSP ReaScripts in {scripts} and the expression effect in {jsfx}\n"
            f"engine {config['host']}:{config['port']}; {start}\n"
            f"two steps are left, in REAPER:\n"
            f"  1. Options > Preferences > Plug-ins > ReaScript: tick 'Enable Python for use with ReaScript' "
            f"(Python 3.9 or newer; if REAPER finds none, fill in the Python library folder and file name), then "
            f"restart REAPER\n"
            f"  2. Actions > Show action list > New action > Load ReaScript...: select these files in {scripts}:\n"
            f"{names}\n"
            f"then select a MIDI item and run 'DDSP - Render selected MIDI items' (docs/reaper.md)")


# ---------------------------------------------------------------------------------------------------- Ardour

ARDOUR_SOURCE = PACKAGE / "ardour"
ARDOUR_SCRIPTS = ("ddsp_render.lua", "ddsp_expression.lua", "ddsp_player.lua")  # scanned by Ardour (type in header)
ARDOUR_LIBRARY = ("ddsp_lib.lua", "ddsp_headless.lua")  # in scripts/ddsp/ with config.lua: loaded, not scanned
ARDOUR_DIR_LINE = "local DDSP_DIR = nil -- @DDSP_DIR@"


def ardour_config_dirs() -> list[Path]:
    """Ardour's user folders that exist (ardour9 .. ardour7, newest first), else [ardour7]: under $XDG_CONFIG_HOME
    or ~/.config (Linux), ~/Library/Preferences (macOS), %LOCALAPPDATA% (Windows)."""
    if sys.platform == "darwin":
        base, name = Path.home() / "Library" / "Preferences", "Ardour{}"
    elif sys.platform.startswith("win"):
        base, name = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"), "Ardour{}"
    else:
        base, name = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"), "ardour{}"
    found = [base / name.format(v) for v in (9, 8, 7) if (base / name.format(v)).is_dir()]
    return found or [base / name.format(7)]


def lua_string(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def ardour_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", metavar="DIR", action="append",
                        help="Ardour's user folder (e.g. ~/.config/ardour7; repeatable); default: every ardour7/8/9 "
                             "folder that exists, else ~/.config/ardour7")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python the scripts run the helper with (default: the one running this command)")
    parser.add_argument("--no-engine-start", action="store_true",
                        help="never start the engine from Ardour: start `python -m engine serve` yourself")
    parser.add_argument("--host", default="127.0.0.1", help="engine host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9718, help="engine UDP port (default 9718)")
    parser.add_argument("--preset", default="parametric", help="default preset (default parametric)")
    parser.add_argument("--seed", type=int, default=0, help="default noise seed (default 0)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one render (default 300)")


def install_ardour_files(config_dir: Path, settings: dict) -> Path:
    """Write <config_dir>/scripts/{ddsp_render,ddsp_expression,ddsp_player}.lua and <config_dir>/scripts/ddsp/
    (the library, the headless driver and config.lua, replaced as a whole); returns the scripts folder."""
    scripts = config_dir / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    library = scripts / "ddsp"
    staged = Path(tempfile.mkdtemp(prefix=".ddsp-new-", dir=scripts))
    try:
        folder = staged / "ddsp"
        folder.mkdir()
        for name in ARDOUR_LIBRARY:
            shutil.copyfile(ARDOUR_SOURCE / name, folder / name)
        lines = [f"  {key} = {lua_string(value) if isinstance(value, str) else str(value).lower()},"
                 for key, value in settings.items()]
        (folder / "config.lua").write_text("-- Written by `python -m daw_bridge install ardour` (re-installing rewrites "
                                           "it). Keys: see DEFAULTS in ddsp_lib.lua.\nreturn {\n" + "\n".join(lines)
                                           + "\n}\n", encoding="utf-8")
        replace_folder(folder, library)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    for name in ARDOUR_SCRIPTS:
        text = (ARDOUR_SOURCE / name).read_text(encoding="utf-8")
        if name == "ddsp_render.lua":
            if ARDOUR_DIR_LINE not in text:
                raise InstallError(f"{name} lacks the line {ARDOUR_DIR_LINE!r}")
            text = text.replace(ARDOUR_DIR_LINE, f"local DDSP_DIR = {lua_string(library)}")
        write_atomic(scripts / name, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
    return scripts


@installer("ardour", "Ardour 7+: the DDSP render action and the expression and player Lua DSP scripts",
           ardour_arguments)
def install_ardour(args: argparse.Namespace) -> str:
    if not 1 <= args.port <= 65535:
        raise InstallError(f"--port {args.port} is outside 1..65535")
    dirs = [Path(d).expanduser() for d in args.config_dir] if args.config_dir else ardour_config_dirs()
    settings = {"python": str(args.python), "pythonpath": str(PACKAGE.parent), "host": args.host, "port": args.port,
                "preset": args.preset, "seed": args.seed, "start_engine": not args.no_engine_start,
                "timeout": args.timeout}
    done = [install_ardour_files(d, settings) for d in dirs]
    start = ("the helper starts it when it is not running" if settings["start_engine"]
             else f"start it yourself first: python -m engine serve --port {args.port}")
    return (f"installed the DDSP Lua scripts in {', '.join(map(str, done))}\n"
            f"engine {args.host}:{args.port}; {start}\n"
            f"in Ardour: Edit > Lua Scripts > Script Manager > Action Scripts > Add/Set: 'DDSP Render MIDI Regions' "
            f"(optionally set a preset there), then select MIDI regions and run it from Edit > Lua Scripts or its "
            f"button (docs/ardour.md)")
