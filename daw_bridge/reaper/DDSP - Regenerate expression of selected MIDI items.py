# DDSP - Regenerate expression of selected MIDI items (REAPER ReaScript, Python): render the selected MIDI items
# again, forgetting lane edits (the engine chooses every note's expression anew).
# Installed by `python -m daw_bridge install reaper`; see docs/reaper.md.
import os
import sys

from reaper_python import *


def _ddsp_folder():
    # REAPER does not set __file__ for ReaScripts: the installer puts the scripts in <resource path>/Scripts/ddsp
    here = globals().get("__file__")
    return os.path.dirname(os.path.abspath(here)) if here else os.path.join(RPR_GetResourcePath(), "Scripts", "ddsp")


if _ddsp_folder() not in sys.path:
    sys.path.insert(0, _ddsp_folder())

import ddsp_reaper  # noqa: E402

ddsp_reaper.regenerate_selected(globals())
