"""Ableton Live integration. `DDSPInstrument/` is the MIDI Remote Script (it runs inside Live and is never imported
from here: it needs Live's `_Framework`); `python -m daw_bridge install ableton` copies it, with the pure-Python
protocol modules it needs, into Live's User Library. See docs/ableton.md."""
