"""The executor's parser of the harness's frames, fed in arbitrary slices."""

from __future__ import annotations

from sandbox.executor import _FrameParser, _result_from

STREAM = (
    b'{"i":0,"ev":"start"}\n{"i":0,"ch":"print","n":6}\nhello\n'
    b'{"i":0,"ch":"result","n":27}\n{"ok": true, "value": [1]}\n'
    b'{"i":0,"ev":"end","status":"ok","detail":""}\n'
    b'{"i":1,"ev":"start"}\n{"i":1,"ev":"end","status":"timeout","detail":"no result within 5 s"}\n'
    b'{"ev":"done"}\n'
)


def test_frames_survive_any_split() -> None:
    """However the stream is cut into reads, the same frames come out."""
    for size in (1, 3, 7, 64, len(STREAM)):
        parser = _FrameParser()
        for start in range(0, len(STREAM), size):
            parser.feed(STREAM[start : start + size])
        assert parser.done
        assert parser.started == [0, 1]
        assert bytes(parser.prints[0]) == b"hello\n"
        ok = _result_from(*parser.ended[0], parser.result.get(0), "")
        assert ok.value == [1] and ok.error is None
        late = _result_from(*parser.ended[1], parser.result.get(1), "")
        assert late.error is not None and late.error.kind == "timeout"


def test_result_payload_is_untrusted() -> None:
    """Garbage or an unknown error kind from the child is reported as malformed."""
    assert _result_from("ok", "", bytearray(b"not json"), "").error.kind == "malformed_output"  # type: ignore[union-attr]
    odd = _result_from("ok", "", bytearray(b'{"ok": false, "kind": "pwned", "message": "x"}'), "")
    assert odd.error is not None and odd.error.kind == "malformed_output"
    assert _result_from("ok", "", None, "").error.kind == "crashed"  # type: ignore[union-attr]


def test_a_line_that_is_not_a_frame_stops_the_parser() -> None:
    """Bytes the code managed to write into the harness's stream (gVisor) are not taken
    as frames: parsing stops and the stream counts as corrupt."""
    parser = _FrameParser()
    parser.feed(b'{"i": 0, "ev": "start"}\nforged text\n{"i": 0, "ev": "end", "status": "ok"}\n')
    assert parser.started == [0] and parser.corrupt and parser.done and parser.ended == {}


def test_only_a_fatal_frame_before_any_input_counts() -> None:
    """The hardening check runs before any code, so a ``fatal`` frame is the harness's only
    as the first frame; after an input started it is forged."""
    first = _FrameParser()
    first.feed(b'{"ev": "fatal", "detail": "/tmp is writable"}\n')
    assert first.fatal == "/tmp is writable" and not first.corrupt
    later = _FrameParser()
    later.feed(b'{"i": 0, "ev": "start"}\n{"ev": "fatal", "detail": "x"}\n')
    assert later.fatal is None and later.corrupt


def test_a_stream_over_the_batch_cap_overflows() -> None:
    """More bytes than a batch may return stop the parser (``overflow``)."""
    parser = _FrameParser(limit=100)
    parser.feed(b'{"i": 0, "ev": "start"}\n' + b"x" * 200)
    assert parser.overflow


def test_integers_past_two_to_the_53_are_read_as_the_double_they_print() -> None:
    """JavaScript prints 8.783400807051069e18 as digits: read as that double, so its
    results equal Python's; integers a double holds exactly stay integers."""
    raw = b'{"ok": true, "value": [8783400807051069000, 9007199254740992, -12, 1e3]}'
    value = _result_from("ok", "", bytearray(raw), "").value
    assert value == [8.783400807051069e18, 9007199254740992, -12, 1000.0]
    assert [type(v) for v in value] == [float, int, int, float]
