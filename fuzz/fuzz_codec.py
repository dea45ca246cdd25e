"""Coverage-guided fuzzing of the AMI codec and the event normaliser (``make fuzz``).

Invariant: any bytes, in any split, either decode or raise ``AmiProtocolError``; whatever
decodes normalises without raising; the codec's buffer stays within its frame cap.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from ctid.ami.codec import AmiCodec, Banner
    from ctid.ami.events import normalize
    from ctid.errors import AmiProtocolError

MAX_FRAME = 4096


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    split = fdp.ConsumeIntInRange(0, 64)
    payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    codec = AmiCodec(expect_banner=split % 2 == 0, max_frame=MAX_FRAME)
    step = max(1, split)
    try:
        for offset in range(0, len(payload), step):
            for message in codec.feed(payload[offset : offset + step]):
                if not isinstance(message, Banner):
                    normalize(message, 0.0)
            if len(codec._buffer) > MAX_FRAME:
                raise AssertionError("codec buffer exceeded its cap")
    except AmiProtocolError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
