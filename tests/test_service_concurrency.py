"""8 clients x 3 clips at once over real sockets: all complete, each identical to a sequential render."""
import threading
import time

import numpy as np
import soundfile as sf

from engine.notes import Clip
from engine.render import render_clip
from service_fixtures import client_for, notes, running_service

CLIENTS, CLIPS, RATE = 8, 3, 16000
TIMEOUT = 240  # seconds for all clients together


def clip_notes(client: int, clip: int) -> list[dict]:
    sent = notes(6 + 2 * clip, step=0.2, length=0.3, prefix=f"c{client}k{clip}-")  # overlaps: 2 voices
    for note in sent:
        note["pitch"] += client
    return sent


def test_eight_clients_several_clips_each_match_a_sequential_render(tmp_path, parametric):
    results, failures = {}, []

    def run(index, service):
        try:
            with client_for(service) as client:
                sessions = {k: client.start_render(f"client{index}-clip{k}", "parametric", clip_notes(index, k),
                                                   sample_rate=RATE, seed=index)
                            for k in range(CLIPS)}  # all three in flight at once
                for k, session in sessions.items():
                    results[index, k] = client.wait(session, timeout=120).result
        except Exception as error:  # reported below, with the client it happened to
            failures.append((index, repr(error)))

    with running_service(tmp_path, workers=2, queue_size=CLIENTS * CLIPS) as service:
        threads = [threading.Thread(target=run, args=(i, service)) for i in range(CLIENTS)]
        deadline = time.monotonic() + TIMEOUT
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [i for i, thread in enumerate(threads) if thread.is_alive()]
        assert not stuck, f"clients {stuck} still waiting after {TIMEOUT} s"
    assert not failures, failures
    assert len(results) == CLIENTS * CLIPS
    assert len({r.path for r in results.values()}) == CLIENTS * CLIPS
    for (index, k), result in results.items():
        expected = render_clip(Clip.from_data(clip_notes(index, k)).checked(), parametric, RATE, seed=index)
        audio, _ = sf.read(result.path, dtype="float32")
        assert np.array_equal(audio, expected.audio), (index, k)
        assert result.controls == expected.controls
