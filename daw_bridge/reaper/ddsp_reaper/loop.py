"""The defer loop every action runs in (`Runner`), and one item's render through the engine (`RenderJob`)."""
from __future__ import annotations

import time
import traceback

from reaper_python import *  # noqa: F401,F403 (REAPER's API: RPR_* functions)

from daw_bridge import protocol as p

from . import runs
from .engine_link import Engine
from .items import ClipRequest
from .settings import load_config, say, script_folder


class Runner:
    """One action's defer loop: `step(now)` runs once per REAPER defer cycle (~30 per second) until it returns
    False; the socket is closed and `finish()` called at the end, or when REAPER terminates the script. The loop is
    reached through its number in `runs` (all scripts share one __main__), so any number of runs go at once."""

    def __init__(self, context: dict, name: str):
        self.context = context
        self.config = load_config(script_folder(context))
        self.engine = Engine(self.config, name)
        self.closed = False
        self.number = runs.register(self)
        context["RPR_atexit"](runs.exit_code(self.number))

    def start(self) -> None:
        self.context["RPR_defer"](runs.tick_code(self.number))

    def tick(self) -> None:
        if self.closed:
            return
        try:
            again = self.step(time.monotonic())
        except Exception:
            say("internal error, stopping:\n" + traceback.format_exc())
            again = False
        if again:
            self.context["RPR_defer"](runs.tick_code(self.number))
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            runs.forget(self.number)
            try:
                self.finish()
            finally:
                self.engine.close()

    def step(self, now: float) -> bool:
        raise NotImplementedError

    def finish(self) -> None:
        pass


class RenderJob:
    """One item's render: waits for the engine, uploads, waits, applies the result."""

    def __init__(self, request: ClipRequest):
        self.request = request
        self.session: p.RenderSession | None = None
        self.done = False
        self.outcome: p.RenderOutcome | None = None
        self.reported = 0.0
        self.waiting = False  # finished while its project was not the active tab (said once)

    def place_when(self) -> str:
        """Where the item is, in numbers only: "now" (the active project), "later" (its project is another tab:
        REAPER's wrapper passes that tab's pointers as NULL, so it waits) or "gone" (deleted, or its tab closed)."""
        item = self.request.item
        if RPR_ValidatePtr2(0, item, "MediaItem*"):
            return "now"
        if RPR_ValidatePtr2(self.request.project, item, "MediaItem*"):
            if not self.waiting:
                self.waiting = True
                say(f"{self.request.label}: rendered; it is placed when its project tab is active again")
            return "later"
        return "gone"

    def submit(self, engine: Engine) -> None:
        request = self.request
        self.session = engine.bridge.render(request.clip_id, request.preset, request.wire_notes(),
                                            request.sample_rate, request.length, request.seed,
                                            request.file_name(), listener=self._event)

    def _event(self, session, event: str) -> None:
        if event == "queued" and session.ahead:
            say(f"{self.request.label}: queued behind {session.ahead} render(s)")
        elif event == "warning":
            say(f"{self.request.label}: engine warning: {session.warnings[-1]}")
        elif event == "progress" and session.progress - self.reported >= 0.25:
            self.reported = session.progress
            say(f"{self.request.label}: rendering {100 * session.progress:.0f}%")
