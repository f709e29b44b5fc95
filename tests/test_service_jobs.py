"""The engine service's render queue (engine/service/jobs.py), over real UDP sockets: a full queue, cancelling,
superseding a clip's render, shutting down with renders queued, the thread settings renders run with."""
import ctypes
import glob
import os
import threading

import pytest
import torch

from daw_bridge import protocol as p
from daw_bridge.client import EngineError
from engine.incremental import RenderCache
from service_fixtures import Peer, client_for, errors, long_notes, notes, running_service, until_state


def test_queue_busy_cancel_supersede_and_status(tmp_path):
    with running_service(tmp_path, queue_size=1) as service, client_for(service) as client:
        a = client.start_render("clip-x", "parametric", long_notes(60))
        until_state(client, a, "rendering")
        b = client.start_render("clip-y", "parametric", long_notes(60, "y"))
        until_state(client, b, "queued")
        with pytest.raises(EngineError, match="busy"):
            client.render("clip-z", "parametric", notes(2))
        client.bridge.cancel(b)
        with pytest.raises(EngineError, match="cancelled"):
            client.wait(b, timeout=10)
        d = client.render("clip-x", "parametric", notes(3), timeout=60)  # supersedes a
        assert a.error[0] == p.SUPERSEDED and d.mode == "full"
        other = Peer(service.port)  # request ids belong to their client
        assert errors(other.request(p.CANCEL, a.req), p.UNKNOWN_REQUEST)
    assert len(list(service.render_dir.glob("*.wav"))) == 1


def test_stop_fails_queued_renders(tmp_path):
    with running_service(tmp_path) as service, client_for(service) as client:
        a = client.start_render("s1", "parametric", long_notes(30))
        b = client.start_render("s2", "parametric", notes(3))
        until_state(client, b, "queued")
        threading.Thread(target=service.stop).start()
        with pytest.raises(EngineError, match="shutting_down"):
            client.wait(b, timeout=10)
        with pytest.raises(EngineError, match="shutting_down|engine_lost"):
            client.wait(a, timeout=20)


def library_threads() -> tuple[int, int] | None:
    """(OpenMP, MKL) threads the calling thread's matrix products would use, read from torch's own library without
    touching torch (which would set them up); None where the library does not export them."""
    library = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.*"))
    try:
        handle = ctypes.CDLL(library[0])
        return handle.omp_get_max_threads(), handle.mkl_get_max_threads()
    except (IndexError, OSError, AttributeError):
        return None


@pytest.mark.skipif(library_threads() is None, reason="torch's library does not export its thread counts here")
@pytest.mark.parametrize("threads", [1, 2])
def test_renders_run_with_the_configured_threads_from_the_first_one(tmp_path, monkeypatch, threads):
    """torch keeps OpenMP's and MKL's thread counts per thread: a worker thread must set them before its first
    render, or that render sums in another order than the next ones (same request, other bytes)."""
    seen = []
    render = RenderCache.render

    def spy(self, *args, **kwargs):
        seen.append(library_threads())
        return render(self, *args, **kwargs)

    monkeypatch.setattr(RenderCache, "render", spy)
    with running_service(tmp_path, threads=threads, workers=2) as service, client_for(service) as client:
        for k in range(3):
            client.render(f"t{k}", "parametric", notes(2), sample_rate=16000, timeout=60)
    assert seen == [(threads, threads)] * 3
