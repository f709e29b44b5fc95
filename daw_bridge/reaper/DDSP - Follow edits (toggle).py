# DDSP - Follow edits (toggle) (REAPER ReaScript, Python): start or stop follow mode: rendered items re-render by
# themselves when their notes, lanes, preset or place change.
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

ddsp_reaper.follow_toggle(globals())
