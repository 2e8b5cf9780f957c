"""liccs's frames and containers: every kind of damage is refused with a message, never decoded."""

from __future__ import annotations

import random

import pytest

from liccs.engines.bitstream import BitstreamError, Container, frame, unframe

PAYLOAD = bytes(range(256)) * 3


def test_frame_roundtrip_keeps_checks():
    assert unframe(frame(PAYLOAD, [1, 2**32 - 1])) == (PAYLOAD, (1, 2**32 - 1))


@pytest.mark.parametrize("cut", [0, 3, 11, 16, 100, len(frame(PAYLOAD, [7])) - 1])
def test_cut_short_frame(cut):
    with pytest.raises(BitstreamError, match="cut short|not a liccs frame"):
        unframe(frame(PAYLOAD, [7])[:cut], "latent y")


def test_every_single_flipped_byte_is_caught():
    data = frame(PAYLOAD, [7])
    rng = random.Random(0)
    for pos in list(range(len(data) - len(PAYLOAD))) + rng.sample(range(len(data)), 40):
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        with pytest.raises(BitstreamError):
            unframe(bytes(bad))


def test_container_damage():
    c = Container(b"12345678", (75, 117), (2, 2), (frame(b"y" * 50, [3]), frame(b"z" * 20)))
    data = c.to_bytes()
    assert Container.from_bytes(data) == c
    for bad, msg in [(data[:-1], "cut short"), (data + b"\0", "unexpected bytes"), (b"PNG" + data, "not a liccs"),
                     (data[:10], "cut short")]:
        with pytest.raises(BitstreamError, match=msg):
            Container.from_bytes(bad, "kodim01.licc")
    flipped = bytearray(data)
    flipped[8] ^= 0x20  # inside the weights fingerprint
    with pytest.raises(BitstreamError, match="header is corrupt"):
        Container.from_bytes(bytes(flipped))
