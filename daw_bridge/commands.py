"""The command registry of `python -m daw_bridge`, below every module that defines a command.

Commands live in `COMMANDS` (name -> (help, add_arguments, run)); a module adds one with `command(...)`, and the
entry point (cli.py) imports every such module. A command reports a user's error by raising `CliError` (one line).
"""
from __future__ import annotations

import argparse
from typing import Callable

from . import protocol as p

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}


class CliError(Exception):
    pass


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `run(args)` as `python -m daw_bridge <name>`."""
    def register(run):
        COMMANDS[name] = (help, add_arguments, run)
        return run
    return register


def engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=p.DEFAULT_HOST, help=f"engine host (default {p.DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=p.DEFAULT_PORT, help=f"engine UDP port (default {p.DEFAULT_PORT})")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
