"""REAPER ReaScripts (Python) and the DDSP expression JSFX; installed by `python -m daw_bridge install reaper`
(docs/reaper.md). The scripts run inside REAPER, not from this package."""
