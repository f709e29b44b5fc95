"""Requests in the engine service (engine/service/uploads.py), over real UDP sockets: chunked uploads (acks,
duplicates, bad chunks, expiry), bad notes, request-id reuse, status and fetch of a finished render, limits per
client, requests that only their sender can touch."""
import os

from daw_bridge import protocol as p
from service_fixtures import NOTE, Peer, client_for, errors, header, notes, running_service

NOTE_B = ("b", 64, 0.5, 1.0, 100) + (p.GENERATE,) * 6


def test_upload_faults_bad_notes_and_request_reuse(tmp_path):
    with running_service(tmp_path, upload_timeout=2.5) as service:
        peer = Peer(service.port)
        peer.send(header(1, n_notes=2, n_chunks=2))
        assert peer.replies()[0].fields == {"req": 1, "chunk": -1}
        chunk0 = p.encode(p.NOTES, 1, 0, records=[NOTE])
        peer.send(chunk0)
        peer.send(chunk0)  # duplicate: acknowledged again, stored once
        assert [r.fields["chunk"] for r in peer.replies(count=2)] == [0, 0]
        assert peer.request(p.STATUS, 1)[0].fields == {"req": 1, "chunk": -1}  # still receiving
        for data, code in [(p.encode(p.NOTES, 1, 5, records=[NOTE]), p.BAD_ARGUMENTS),
                           (p.encode(p.NOTES, 1, 1), p.BAD_ARGUMENTS),
                           (p.encode(p.NOTES, 1, 1, records=[("x" * 200,) + NOTE[1:]]), p.TOO_LARGE),
                           (header(1, clip="other", n_notes=2, n_chunks=2), p.DUPLICATE_REQUEST),
                           (p.encode(p.FETCH, 1, 0, 1), p.BAD_ARGUMENTS)]:
            peer.send(data)
            assert [r.fields.get("code") for r in peer.replies()] == [code]
        # chunk 1 never comes: the upload expires
        (expired,) = peer.replies(until=lambda r: r.address == p.ERROR)
        assert expired.fields["code"] == p.EXPIRED and "1 of 2 chunks" in expired.fields["message"]
        # notes the engine cannot render: one clear error naming the note
        bad = ("b", 200, 0.0, 0.5, 100) + (p.GENERATE,) * 6
        peer.send(header(2, n_notes=2))
        peer.send(p.encode(p.NOTES, 2, 0, records=[NOTE, bad]))
        replies = peer.replies(until=lambda r: r.address == p.ERROR)
        assert errors(replies, p.BAD_NOTES) and "'b'" in errors(replies)[0].fields["message"]
        # fewer notes than announced
        peer.send(header(3, n_notes=3))
        peer.send(p.encode(p.NOTES, 3, 0, records=[NOTE]))
        assert "announced 3 notes" in errors(peer.replies(until=lambda r: r.address == p.ERROR))[0].fields["message"]
        # a half-controlled note
        partial = ("c", 60, 0.0, 0.5, 100, 0.5) + (p.GENERATE,) * 5
        peer.send(header(4, n_notes=1))
        peer.send(p.encode(p.NOTES, 4, 0, records=[partial]))
        assert errors(peer.replies(until=lambda r: r.address == p.ERROR), p.BAD_NOTES)
        assert peer.request(p.PING, 9)[0].address == p.PONG


def test_status_and_fetch_of_a_finished_render(tmp_path):
    with running_service(tmp_path) as service:
        peer = Peer(service.port)
        peer.send(header(5, n_notes=1))
        peer.send(p.encode(p.NOTES, 5, 0, records=[NOTE]))
        done = [r for r in peer.replies(wait=30, until=lambda r: r.address == p.DONE) if r.address == p.DONE][0]
        assert done.fields["n_chunks"] == 1 and os.path.exists(done.fields["path"])
        assert peer.request(p.STATUS, 5)[0].fields == done.fields
        (controls,) = peer.request(p.FETCH, 5, 0, 1)
        assert controls.records[0]["id"] == "a" and controls.records[0]["rerendered"] == 1
        assert errors(peer.request(p.FETCH, 5, 1, 1), p.BAD_ARGUMENTS)
        assert errors(peer.request(p.FETCH, 5, 0, 33), p.BAD_ARGUMENTS)
        assert peer.request(p.CANCEL, 5)[0].address == p.DONE  # finished: nothing to cancel
        peer.send(header(5, n_notes=1))
        assert peer.replies()[0].address == p.DONE  # the same header again: the latest state


def test_open_uploads_are_limited_per_client_not_for_everyone(tmp_path):
    with running_service(tmp_path, max_uploads=4) as service, client_for(service) as client:
        hog = Peer(service.port)
        for req in range(1, 5):  # headers whose notes never come
            hog.send(header(req, n_notes=2, n_chunks=2))
            assert hog.replies()[0].fields == {"req": req, "chunk": -1}
        hog.send(header(5, n_notes=2, n_chunks=2))
        assert errors(hog.replies(), p.BUSY)  # this client has enough open
        result = client.render("other", "parametric", notes(2), sample_rate=16000, timeout=60)  # everyone else: not
        assert result.mode == "full" and os.path.exists(result.path)


def test_only_the_sender_of_a_request_can_touch_it(tmp_path):
    """Another socket naming the victim's port as its reply port reaches neither the victim's request nor the
    victim: it is told, at its own address, that it has no such request."""
    with running_service(tmp_path) as service:
        victim, other = Peer(service.port), Peer(service.port)
        victim.send(header(7, n_notes=2, n_chunks=2))
        assert victim.replies()[0].fields == {"req": 7, "chunk": -1}
        victim.send(p.encode(p.NOTES, 7, 0, records=[NOTE]))
        assert victim.replies()[0].fields == {"req": 7, "chunk": 0}
        for forged in [p.encode(p.CANCEL, 7, reply_port=victim.port), p.encode(p.STATUS, 7, reply_port=victim.port),
                       p.encode(p.FETCH, 7, 0, 1, reply_port=victim.port),
                       p.encode(p.NOTES, 7, 1, records=[NOTE_B], reply_port=victim.port), p.encode(p.CANCEL, 7)]:
            other.send(forged)
            assert errors(other.replies(), p.UNKNOWN_REQUEST), forged
        assert victim.quiet(0.5) == []  # the victim heard nothing of it
        victim.send(p.encode(p.NOTES, 7, 1, records=[NOTE_B]))
        replies = victim.replies(until=lambda r: r.address in (p.DONE, p.ERROR), wait=60)
        assert not errors(replies) and replies[-1].address == p.DONE
