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
