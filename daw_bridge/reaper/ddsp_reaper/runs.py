"""Every running action's loop, found by its number. REAPER runs all Python ReaScripts in ONE `__main__` namespace:
a loop kept in a global (`_tick`, an exit handler) is shared by every script running at once, so the second run
replaces the first one's. The code a run defers, and its atexit code, name the run's number instead."""
from __future__ import annotations

import itertools

RUNS: dict = {}  # number -> the loop.Runner of a run still going
_numbers = itertools.count(1)


def register(runner) -> int:
    number = next(_numbers)
    RUNS[number] = runner
    return number


def forget(number: int) -> None:
    RUNS.pop(number, None)


def tick(number: int) -> None:
    runner = RUNS.get(number)
    if runner is not None:
        runner.tick()


def close(number: int) -> None:
    runner = RUNS.get(number)
    if runner is not None:
        runner.close()


def tick_code(number: int) -> str:
    """What a run passes to RPR_defer: REAPER evaluates it in the shared __main__."""
    return f"import ddsp_reaper.runs; ddsp_reaper.runs.tick({number})"


def exit_code(number: int) -> str:
    """What a run passes to RPR_atexit (REAPER runs it when the script ends or is terminated)."""
    return f"import ddsp_reaper.runs; ddsp_reaper.runs.close({number})"
