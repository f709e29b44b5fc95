"""Command line of the DAW bridge: `python -m daw_bridge <command> ...`.

Commands live in `commands.COMMANDS` (name -> (help, add_arguments, run)); a module adds one with
`commands.command(...)`, and this entry point imports every such module. Errors print one line (`error: ...`) and
exit with status 1. Helper processes (e.g. for Ardour's Lua, which cannot receive UDP) use `--json` and read one JSON
object from stdout.
"""
from __future__ import annotations

import argparse
import sys

from .client import EngineError
from .commands import COMMANDS, CliError

# The modules that register commands, in the order `--help` lists them (one import each, so that order stays).
from . import engine_commands  # noqa: F401  send, ping, presets
from . import install  # noqa: F401  install (each DAW registers its installer there)
from . import ardour_helper  # noqa: F401  ardour-render, the Ardour scripts' helper


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m daw_bridge", description="Talk to a running DDSP engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text)
        add_arguments(command_parser)
        command_parser.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CliError, EngineError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
