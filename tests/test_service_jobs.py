"""The engine service's render queue (engine/service/jobs.py), over real UDP sockets: a full queue, cancelling,
superseding a clip's render, shutting down with renders queued."""
import threading

import pytest

from daw_bridge import protocol as p
from daw_bridge.client import EngineError
from service_fixtures import Peer, client_for, errors, long_notes, notes, running_service


def test_queue_busy_cancel_supersede_and_status(tmp_path):
    with running_service(tmp_path, queue_size=1) as service, client_for(service) as client:
        a = client.start_render("clip-x", "parametric", long_notes(60))
        while a.state != "rendering":
            client.pump(0.02)
        b = client.start_render("clip-y", "parametric", long_notes(60, "y"))
        while b.state != "queued":
            client.pump(0.02)
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
        while b.state != "queued":
            client.pump(0.02)
        threading.Thread(target=service.stop).start()
        with pytest.raises(EngineError, match="shutting_down"):
            client.wait(b, timeout=10)
        with pytest.raises(EngineError, match="shutting_down|engine_lost"):
            client.wait(a, timeout=20)
