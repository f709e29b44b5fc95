"""The background engine service (`python -m engine serve`): the OSC protocol of docs/protocol.md over UDP.

Its modules, each importing only those listed before it:
    config.py        ServiceConfig, the default render folder, the shapes the parts share
    output.py        the render folder: atomic writes, WAV patching, removal of old renders and leftovers
    preset_cache.py  the presets loaded so far (loads on request, in a thread)
    uploads.py       requests by client and id: chunked uploads, acks, limits, expiry, latest reply, controls
    jobs.py          the render queue and its workers: progress, cancellation, superseding, shutdown
    server.py        the UDP socket, dispatch per OSC address, replies, housekeeping: `Service`, `serve()`
"""
from .config import ServiceConfig, default_render_dir
from .output import patch_wav
from .server import Service, serve


__all__ = ["Service", "ServiceConfig", "default_render_dir", "patch_wav", "serve"]
