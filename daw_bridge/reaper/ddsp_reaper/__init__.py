"""DDSP for REAPER: what the action scripts share (docs/reaper.md).

REAPER runs the action scripts ("DDSP - *.py") with its embedded Python; each adds its own folder to sys.path and
calls one entry point here with its globals (REAPER puts RPR_defer/RPR_atexit there, not in reaper_python):

- `render_selected(context)`: render the selected MIDI items; the audio lands on a companion track
  "<track> (render)" at each item's exact position and length (replacing that item's previous render, never another
  item), and the engine's per-note expression is written as points on six automation lanes (the "DDSP expression"
  JSFX on the MIDI track);
- `regenerate_selected(context)`: the same, forgetting lane edits (the engine generates every note again);
- `follow_toggle(context)`: a background loop that re-renders an already rendered item when its notes, its lanes
  at its notes, its preset or its place change (debounced; the engine re-renders incrementally); run it again to
  stop it;
- `choose_preset(context)`: pick the engine preset of the selected tracks (kept in the project, per track).

Nothing here blocks REAPER: a non-blocking UDP socket is polled from an RPR_defer loop and drives
daw_bridge.protocol's state machines. Standard library + reaper_python + daw_bridge (copied next to this package by
`python -m daw_bridge install reaper`) only.

One concern per module; each imports only those above it in this list:

- `settings`: the names and numbers the scripts share, `say` (the console), `Skip`, ddsp_config.json;
- `runs`: every running action's loop by number (all ReaScripts share one `__main__`, so no loop lives in a global);
- `project`: REAPER's tracks, items and takes as the scripts read them;
- `memory`: what an item remembers of its last render (a JSON file named in its P_EXT);
- `lanes`: the six expression lanes (the JSFX's envelopes, found by its fx_ident);
- `items`: what one render of an item sends (`read_notes`, `ClipRequest`);
- `placement`: a finished render into the project (audio item, lane points, the item's memory);
- `engine_link`: the UDP link to the engine (and starting it);
- `loop`: the defer loop of every action (`Runner`) and one item's render (`RenderJob`);
- `watch`: what follow mode checks, in numbers while nothing changed (REAPER's wrapper makes strings costly);
- `follow`: follow mode (`Follower`);
- `actions`: the entry points above, the render and preset actions.
"""
from .actions import choose_preset, follow_toggle, regenerate_selected, render_selected

__all__ = ["choose_preset", "follow_toggle", "regenerate_selected", "render_selected"]
