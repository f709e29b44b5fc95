"""The names and numbers the scripts share, the console, and the settings (ddsp_config.json, the defaults)."""
from __future__ import annotations

import json
import os

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p


SECTION = "ddsp"  # ext-state section and P_EXT: prefix
CONFIG_FILE = "ddsp_config.json"
# The JSFX by its path under REAPER's Effects folder, without the extension, by its description
JSFX_NAMES = ("JS:ddsp/ddsp_expression.jsfx", "JS:ddsp/ddsp_expression", "JS:DDSP expression")
JSFX_FILES = ("ddsp_expression.jsfx", "ddsp_expression")  # the last part of its fx_ident (what it is, any name)
FX_TAGS = ("js: ddsp expression", "ddsp_expression")  # REAPER < 6.37 (no fx_ident): how its shown name starts
ITEM_STATE = "P_EXT:ddsp_state"  # on a MIDI item: the name of its memory file (memory.py)
RENDERED = "rendered"  # global ext state: "<count> <item> <item>...", the items rendered last (follow mode reads it)
RENDER_OF = "P_EXT:ddsp_render_of"  # on a render item: the GUID of its MIDI item
COMPANION_OF = "P_EXT:ddsp_companion_of"  # on a render track: the GUID of its MIDI track
TRACK_PRESET = "P_EXT:ddsp_preset"
TRACK_BEND_RANGE = "P_EXT:ddsp_bend_range"  # semitones, for channels that set none with RPN 0 (default 2)
TRACK_MPE = "P_EXT:ddsp_mpe"  # "lower" / "upper" [count]: the track's MPE zones when its items carry no MCM
DEFAULT_PRESET = "parametric"
SQUARE = 1  # envelope point shape
EDIT_TOLERANCE = 0.0015  # a lane value further than this from what was written counts as an edit
EVAL_AFTER = 0.0005  # s: lanes are read this long after a note's point (half its length at most)
SAME_TIME = 1e-6  # s
MAX_IN_FLIGHT = 4  # renders uploaded to the engine at once
CHUNK_SIZE = 4 * 1024 * 1024 - 1  # the most a string REAPER writes back through the wrapper's 4 MiB buffer
BUILD_PEAKS = 40047  # action "Peaks: Build any missing peaks"

DEFAULTS = {
    "host": p.DEFAULT_HOST,
    "port": p.DEFAULT_PORT,
    "engine_command": None,  # e.g. ["/path/.venv/bin/python", "-m", "engine", "serve", "--port", "9718"]
    "engine_cwd": None,
    "engine_log": None,  # default: <temp>/ddsp-engine.log
    "connect_timeout": 5.0,  # s without an answer before "no engine"
    "boot_timeout": 90.0,  # s allowed for an engine the script started
    "debounce": 0.6,  # s an item must stay unchanged before follow mode re-renders it
    "scan_interval": 0.25,  # s between follow mode's checks for a changed project
    "full_scan_interval": 2.0,  # s between checks even when REAPER reports no change
    "render_folder": "DDSP renders",  # under the project's media folder
    "seed": 0,
}


class Skip(Exception):
    """An item that cannot be rendered; the message says why in one line."""


def say(text: str) -> None:
    RPR_ShowConsoleMsg(f"DDSP: {text}\n")


def script_folder(context: dict) -> str:
    path = context.get("__file__")
    if path:
        return os.path.dirname(os.path.abspath(path))
    return os.path.join(RPR_GetResourcePath(), "Scripts", "ddsp")


def load_config(folder: str) -> dict:
    """ddsp_config.json (written by the installer) over the defaults; a global ext state "ddsp"/"port" or "host"
    (set from any script) wins."""
    config = dict(DEFAULTS)
    path = os.path.join(folder, CONFIG_FILE)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as handle:
                config.update(json.load(handle))
        except (OSError, ValueError) as error:
            say(f"ignoring {path}: {error}")
    for key in ("host", "port"):
        value = RPR_GetExtState(SECTION, key)
        if value:
            config[key] = int(value) if key == "port" else value
    return config
