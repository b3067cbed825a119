"""The checks every WebSocket frame passes before any handler sees it (``messaging.frames``)."""

from __future__ import annotations

import base64
import json
import tracemalloc

import pytest

from messaging.frames import REFUSALS_BEFORE_CLOSE, BadFrame, FrameGate, TokenBucket, parse_frame


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(3, 3 / 60, clock)
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]
    assert bucket.take() == pytest.approx(20)  # one token every 20 s
    clock.now += 19
    assert bucket.take() == pytest.approx(1)
    clock.now += 1
    assert bucket.take() == 0
    clock.now += 3600  # refills to its capacity, no further
    assert [bucket.take() for _ in range(4)][-1] > 0


def test_token_bucket_takes_nothing_when_it_refuses():
    clock = Clock()
    bucket = TokenBucket(100, 10, clock)
    assert bucket.take(60) == 0
    assert bucket.take(60) == pytest.approx(2)
    assert bucket.take(40) == 0


def test_gate_counts_frames_of_every_size_and_characters(settings):
    settings.WEBSOCKET_MAX_FRAME_BYTES = 1000
    clock = Clock()
    gate = FrameGate(frames=(2, 10), chars=(1500, 60), clock=clock)
    assert gate.admit(900) is None
    assert gate.admit(5000) is None  # over the frame limit: refused as too large later, spends no characters
    refusal = gate.admit(1)
    assert (refusal.code, refusal.retry_after) == ("rate_limited", 5)
    clock.now += 5
    refusal = gate.admit(900)  # 600 + 5 s * 25/s characters left, 175 short
    assert (refusal.code, refusal.retry_after) == ("rate_limited", 7)
    assert refusal.message == "Too much data: try again in 7 s."


def test_gate_says_when_refusals_in_a_row_should_close_the_connection():
    gate = FrameGate(frames=(1, 1), chars=(10, 1))
    assert not any(gate.refused() for _ in range(REFUSALS_BEFORE_CLOSE - 1))
    gate.taken()
    assert not any(gate.refused() for _ in range(REFUSALS_BEFORE_CLOSE - 1))
    assert gate.refused()


@pytest.fixture
def limits(settings):
    settings.MAX_MESSAGE_CHARS = 100
    settings.MAX_UPLOAD_BYTES = 30_000
    settings.WEBSOCKET_MAX_TEXT_FRAME_CHARS = 2_000
    settings.WEBSOCKET_MAX_FRAME_BYTES = 42_000


def refused(text: str) -> BadFrame:
    with pytest.raises(BadFrame) as error:
        parse_frame(text)
    return error.value


def test_small_frames_are_parsed(limits):
    assert parse_frame('{"type": "ping"}') == {"type": "ping"}
    assert refused("{nope").code == "invalid_json"
    assert refused("[1]").code == "invalid_json"
    assert refused("x" * 42_001).code == "too_large"


def test_deep_nesting_is_invalid_json_not_a_crash(limits):
    error = refused("[" * 1_900)
    assert (error.code, error.message) == ("invalid_json", "The frame is nested too deeply.")


def test_a_large_file_frame_parses_as_json_would(limits):
    data = base64.b64encode(bytes(range(256)) * 80).decode()
    frame = {
        "type": "file",
        "filename": "a.bin",
        # A caption that mentions "data" in every way a string can: it is still the caption.
        "content": 'see "data": "QUJD" and \\"data\\": \\',
        "data": data,
        "client_id": "c1",
    }
    for text in (json.dumps(frame), json.dumps(frame, separators=(",", ":")), json.dumps(frame, indent=2)):
        assert len(text) > 2_000
        assert parse_frame(text) == json.loads(text)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "content": "hi", "metadata": {"pad": "A" * 5_000}},
        {"type": "file", "filename": "a.txt", "data": "QUJD", "content": "A" * 5_000},
        {"type": "file", "filename": "a.txt", "data": "QU/D" * 1_000},  # escaped slashes ("\/") below
        {"type": "file", "filename": "a.txt", "data": "QUJD", "metadata": {"data": "A" * 5_000}},
        {"type": "sync", "data": "A" * 5_000},
    ],
)
def test_a_large_frame_must_be_a_file_whose_data_is_the_excess(limits, frame):
    text = json.dumps(frame).replace("/", "\\/")
    assert refused(text).code == "too_large"


def test_a_large_hostile_frame_is_refused_without_parsing_it(limits, settings):
    """13 MB of empty objects would take json.loads over a second and 300 MB."""
    settings.WEBSOCKET_MAX_FRAME_BYTES = 14_000_000
    hostile = '{"type": "file", "data": "", "x": [' + "{}," * 4_500_000 + "{}]}"
    tracemalloc.start()
    try:
        assert refused(hostile).code == "too_large"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
