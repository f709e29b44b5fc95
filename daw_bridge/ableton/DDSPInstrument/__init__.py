"""DDSP Instrument: a MIDI Remote Script for Ableton Live 12.1+ that renders MIDI clips with the DDSP engine
(`python -m engine serve`) and keeps the six expression controls as clip envelopes of a "DDSP Expression" rack.

Live loads `<User Library>/Remote Scripts/DDSPInstrument/__init__.py` and calls `create_instance(c_instance)` when
the script is chosen as a Control Surface. Installed by `python -m daw_bridge install ableton`; see docs/ableton.md.
"""


def create_instance(c_instance):
    from .surface import DDSPInstrument

    return DDSPInstrument(c_instance)
