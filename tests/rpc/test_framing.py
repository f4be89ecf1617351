from sidecar.rpc.framing import OVERSIZED, encode, split_lines


def test_lines_split_across_chunks_are_joined():
    chunks = [b'{"a":', b"1}\n{", b'"b":2}\n']
    assert list(split_lines(chunks)) == [b'{"a":1}', b'{"b":2}']


def test_blank_lines_are_skipped_and_a_last_line_without_newline_counts():
    assert list(split_lines([b"\n  \n[1]\n\r\n[2]"])) == [b"[1]", b"[2]"]


def test_a_line_exactly_at_the_cap_passes():
    assert list(split_lines([b"x" * 8 + b"\n"], cap=8)) == [b"x" * 8]


def test_an_over_long_line_is_reported_once_and_the_stream_goes_on():
    chunks = [b"y" * 5, b"y" * 5, b"y" * 5 + b"\n", b"ok\n"]
    assert list(split_lines(chunks, cap=8)) == [OVERSIZED, b"ok"]


def test_an_over_long_line_in_one_chunk_with_its_newline():
    assert list(split_lines([b"z" * 20 + b"\nnext\n"], cap=8)) == [OVERSIZED, b"next"]


def test_an_over_long_last_line_without_newline():
    assert list(split_lines([b"a\n", b"b" * 20], cap=8)) == [b"a", OVERSIZED]


def test_encode_is_one_line_even_with_newlines_in_strings():
    frame = encode({"text": "two\nlines\r\u2028"})
    assert frame.endswith(b"\n")
    assert frame.count(b"\n") == 1
