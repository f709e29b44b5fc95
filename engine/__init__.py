"""Expressive DDSP engine: MIDI notes -> six per-note expression controls -> synthesis parameters -> audio."""
__version__ = "0.1.0"
