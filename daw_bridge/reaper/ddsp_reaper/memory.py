"""What a MIDI item remembers of its last render (each note's controls, what was written on the lanes, the render
item, the request's signature): a JSON file next to the render in the project's render folder, whose name the item
keeps in its P_EXT.

Not the JSON itself in P_EXT: REAPER's Python wrapper passes every char* string through a 4 MiB buffer (a longer one
raises ValueError) and the memory grows ~170 bytes a note (the protocol allows 100k notes). Each render writes a new
file, named after its WAV, so undo, which restores the item's P_EXT, restores the memory that goes with it.
"""
from __future__ import annotations

import copy
import json
import os

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from .project import item_string
from .settings import ITEM_STATE, RENDERED, SECTION

RENDERED_KEPT = 32  # items the RENDERED ext state names
_FILES: dict[str, dict] = {}  # path -> memory: a file never changes once written


def render_folder(config: dict) -> str:
    return os.path.join(RPR_GetProjectPath("", 4096)[0], config["render_folder"])


def memory_name(item) -> str:
    """The item's P_EXT: the file name and, on a second line, its absolute path (the name is looked for in the
    project's render folder first, so a project moved with its media keeps it), or an older version's JSON."""
    return item_string(item, ITEM_STATE)


def _read(path: str):
    if path not in _FILES:
        try:
            with open(path, encoding="utf-8") as handle:
                _FILES[path] = json.load(handle)
        except (OSError, ValueError):
            return None
    return _FILES[path]


def load(item, folder: str, guid: str, name: str | None = None) -> dict:
    """The item's memory ({} when it was never rendered, its file is gone, or it is a copy of a rendered item: the
    memory names another item's GUID). `folder`: render_folder(config); `name`: memory_name(item) if read already."""
    name = memory_name(item) if name is None else name
    if not name:
        return {}
    if name.startswith("{"):
        try:
            state = json.loads(name)
        except ValueError:
            return {}
    else:
        file_name, _, path = name.partition("\n")
        state = _read(os.path.join(folder, file_name))
        if state is None and path:
            state = _read(path)
    if not isinstance(state, dict) or state.get("item", guid) != guid:
        return {}
    return copy.deepcopy(state)


def save(item, state: dict, render_path: str) -> str:
    """Write the memory next to the render `render_path` (atomically) and name it in the item's P_EXT."""
    path = os.path.splitext(render_path)[0] + ".json"
    partial = path + ".part"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(state, handle, separators=(",", ":"))
    os.replace(partial, path)
    _FILES[path] = copy.deepcopy(state)
    return item_string(item, ITEM_STATE, f"{os.path.basename(path)}\n{path}")


def note_rendered(item) -> None:
    """Tell follow mode (another run) that this item's memory changed: the global ext state RENDERED holds a count
    and the last items rendered, newest first (a string REAPER returns as const char*: no buffer to fill)."""
    count, items = rendered()
    RPR_SetExtState(SECTION, RENDERED, " ".join([str(count + 1), item] + items[:RENDERED_KEPT - 1]), False)


def rendered(text: str | None = None) -> tuple[int, list[str]]:
    """(how many renders were noted, the items of the last ones, newest first), from the RENDERED ext state (read
    now when `text` is None)."""
    parts = (RPR_GetExtState(SECTION, RENDERED) if text is None else text).split()
    if not parts or not parts[0].isdigit():
        return 0, []
    return int(parts[0]), parts[1:]
