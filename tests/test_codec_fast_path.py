"""The codec's fast path (whole-buffer CRLF check, inlined filter) changes nothing it returns.

``bench.codec_before`` keeps the codec as it was before the fast path; fed the same bytes the
same way, both must give the same messages, counters, last-frame timestamp and errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import cycle

from hypothesis import given, settings
from hypothesis import strategies as st

from bench import codec_before
from ctid.ami.codec import AmiCodec, Banner, Message
from ctid.errors import AmiProtocolError

KEEP = frozenset({"Newchannel", "Hangup", "DialBegin"})
NAMES = ["Newchannel", "Hangup", "DialBegin", "VarSet", "RTCPSent", " Hangup", "Hangup "]
SEPARATORS = [b"\r\n\r\n", b"\r\n\r\n", b"\r\n\r\n", b"\r\n\n", b"\n\n", b"\n\r\n", b"\r\n\r\n\r\n"]

Outcome = tuple[list[Message | Banner], int, int, float | None, str | None]


def run(codec: AmiCodec | codec_before.AmiCodec, pieces: Iterable[bytes]) -> Outcome:
    out: list[Message | Banner] = []
    error = None
    try:
        for piece in pieces:
            out.extend(codec.feed(piece))
    except AmiProtocolError as err:
        error = str(err)
    stamp = codec.last_frame_timestamp()
    return out, codec.frames_seen, codec.frames_skipped, stamp, error


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, pos = [], 0
    for size in cycle(sizes):
        if pos >= len(data):
            return pieces
        pieces.append(data[pos : pos + size])
        pos += size
    raise AssertionError("unreachable")


def same_either_way(data: bytes, sizes: list[int], keep: bool, max_frame: int) -> None:
    options = {
        "expect_banner": False,
        "keep_events": KEEP if keep else None,
        "max_frame": max_frame,
    }
    new = run(AmiCodec(**options), cut(data, sizes))  # type: ignore[arg-type]
    old = run(codec_before.AmiCodec(**options), cut(data, sizes))  # type: ignore[arg-type]
    assert new == old


frame = st.builds(
    lambda name, headers, eol: eol.join(
        [f"Event: {name}".encode(), *(f"{k}: {v}".encode() for k, v in headers)]
    ),
    st.sampled_from(NAMES),
    st.lists(
        st.tuples(
            st.sampled_from(["Uniqueid", "Timestamp", "Channel", "Variable", "Output"]),
            st.text(alphabet="ab 1.:王\r", max_size=6),
        ),
        max_size=4,
    ),
    st.sampled_from([b"\r\n", b"\r\n", b"\n"]),
)
chunk_sizes = st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.tuples(frame, st.sampled_from(SEPARATORS)), max_size=12),
    sizes=chunk_sizes,
    keep=st.booleans(),
    max_frame=st.sampled_from([40, 120, 64 * 1024]),
)
def test_fast_path_gives_what_the_old_codec_gave_on_frames(
    frames: list[tuple[bytes, bytes]], sizes: list[int], keep: bool, max_frame: int
) -> None:
    same_either_way(b"".join(f + sep for f, sep in frames), sizes, keep, max_frame)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), sizes=chunk_sizes, keep=st.booleans())
def test_fast_path_gives_what_the_old_codec_gave_on_any_bytes(
    data: bytes, sizes: list[int], keep: bool
) -> None:
    same_either_way(data, sizes, keep, 64 * 1024)


def test_event_names_cut_at_the_end_of_a_frame_are_judged_alone() -> None:
    # "Event: Hangu" (no newline) must not share a cache entry with "Event: Hangu\n..."
    data = b"Event: Hangup\r\n\r\nEvent: Hangu\r\n\r\nEvent: Hangup\r\n\r\n"
    same_either_way(data, [len(data)], keep=True, max_frame=64 * 1024)
    codec = AmiCodec(expect_banner=False, keep_events=KEEP)
    names = [m.name for m in codec.feed(data) if isinstance(m, Message)]
    assert names == ["Hangup", "Hangup"]
