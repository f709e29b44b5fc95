"""DDSP Instrument: a MIDI Remote Script for Ableton Live 12.1+ that renders MIDI clips with the DDSP engine
(`python -m engine serve`) and keeps the six expression controls as clip envelopes of a "DDSP Expression" rack.

Live loads `<User Library>/Remote Scripts/DDSPInstrument/__init__.py` and calls `create_instance(c_instance)` when
the script is chosen as a Control Surface. Installed by `python -m daw_bridge install ableton`; see docs/ableton.md.
"""
import sys

NEEDS = "DDSP Instrument needs Ableton Live 12.1 or later (Python 3.9+; this Live runs Python %d.%d)"


def create_instance(c_instance):
    if sys.version_info < (3, 9):  # Live 11 and 12.0 run Python 3.7; the protocol module needs 3.9
        from .host import ControlSurface

        message = NEEDS % sys.version_info[:2]
        c_instance.show_message(message)
        c_instance.log_message(message)
        return ControlSurface(c_instance)
    from .surface import DDSPInstrument

    return DDSPInstrument(c_instance)
