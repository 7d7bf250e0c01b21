"""TextStream: incremental UTF-8 decoding of token pieces, cut at the first stop string."""

from __future__ import annotations

from sfdsl.runtime.sampling import TextStream


def test_pieces_are_joined_and_split_utf8_is_decoded_across_tokens() -> None:
    stream = TextStream()
    snow = "☃".encode()
    assert not stream.push(b"a ")
    assert not stream.push(snow[:2])
    assert stream.text == "a "  # the incomplete character is held back
    assert not stream.push(snow[2:])
    assert stream.close() == "a ☃"


def test_a_stop_string_cuts_the_text_before_it() -> None:
    stream = TextStream(("\n\n", "END"))
    assert not stream.push(b"The answer is 4.")
    assert stream.push(b"\n\nMore")
    assert stream.text == "The answer is 4."


def test_a_stop_string_split_across_pieces_is_found() -> None:
    stream = TextStream(("STOP",))
    assert not stream.push(b"go ST")
    assert stream.push(b"OP now")
    assert stream.text == "go "


def test_the_earliest_stop_wins_and_empty_stops_are_ignored() -> None:
    stream = TextStream(("", "b", "a"))
    assert stream.push(b"xxab")
    assert stream.text == "xx"


def test_close_flushes_an_incomplete_sequence_as_a_replacement() -> None:
    stream = TextStream()
    stream.push("é".encode()[:1])
    assert stream.close() == "\ufffd"
