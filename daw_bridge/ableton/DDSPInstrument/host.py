"""Everything this script imports from Live itself, in one place (the test simulator provides the same names).

Live 12 ships both the `_Framework` and the `ableton.v2` control-surface frameworks; `_Framework.ControlSurface`
gives `song()`, `schedule_message(ticks, callback)` (run from Live's ~100 ms `update_display` timer on Live's main
thread), `show_message(text)` (status bar), `log_message(*text)` (Live's Log.txt) and `disconnect()`.
"""
from _Framework.ControlSurface import ControlSurface  # noqa: F401  (re-exported)
