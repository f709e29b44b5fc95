"""DAW side of the engine: the OSC protocol, a client, and one folder per DAW. Imports without torch."""
__version__ = "0.1.0"
