"""liccs's framing of CompressAI's strings, and a one-file-per-image container.

CompressAI's rANS decoder trusts its input: a string cut short, with flipped bytes, or decoded with other
entropy tables than it was written with, reads past its buffer and can crash the interpreter (seen here:
a segmentation fault on a truncated string). So every string liccs writes is *framed*::

    b"LF" | n_checks u16 | payload length u32 | checks (u32 each) | crc32 u32 | payload

(the crc32 covers header, checks and payload) and :func:`unframe` refuses a frame whose length or checksum
does not hold, naming the latent and image.
``checks`` carry crc32s of the entropy-table indexes the encoder used (one per string, or one per latent
row for autoregressive models), so a decoder whose ``h_s``/``entropy_parameters`` drifted to other tables is
caught instead of decoding a silently wrong image.

A *container* holds one image: ``b"LICC" | version | model fingerprint (8 bytes of the weights' sha256) |
image H, W | latent shape | n strings | header crc32 | frames``. Its length is the real size of the
compressed image: 26 bytes of container plus 12 (+4 per check) per frame on top of CompressAI's strings.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from liccs.core.errors import LiccsError

FRAME_MAGIC = b"LF"
CONTAINER_MAGIC = b"LICC"
VERSION = 2
_FRAME_HEAD = struct.Struct("<2sHI")  # magic, n_checks, payload length
_CONT_HEAD = struct.Struct("<4sB8sHHHHB")  # magic, version, fingerprint, image H, W, latent h, w, n strings


class BitstreamError(LiccsError):
    """A bitstream that is cut short, corrupt, or cannot be decoded exactly; the message says which part."""


def crc32(data: bytes) -> int:
    """The unsigned CRC-32 of ``data``."""
    return zlib.crc32(data) & 0xFFFFFFFF


def frame(payload: bytes, checks: Sequence[int] = ()) -> bytes:
    """``payload`` with liccs's frame header (length, entropy-table ``checks``, crc32 of it all)."""
    head = _FRAME_HEAD.pack(FRAME_MAGIC, len(checks), len(payload))
    head += b"".join(struct.pack("<I", c & 0xFFFFFFFF) for c in checks)
    return head + struct.pack("<I", crc32(head + payload)) + payload


def _frame_size(data: bytes | memoryview, where: str) -> tuple[int, int, tuple[int, ...]]:
    """(header size, payload length, checks) of the frame at the start of ``data`` (not yet verified)."""
    if len(data) < _FRAME_HEAD.size + 4:
        raise BitstreamError(f"{where}: cut short ({len(data)} bytes; a frame header alone is "
                             f"{_FRAME_HEAD.size + 4})")
    magic, n_checks, length = _FRAME_HEAD.unpack_from(data)
    if magic != FRAME_MAGIC:
        raise BitstreamError(f"{where}: not a liccs frame (starts with {bytes(data[:2])!r}, expected {FRAME_MAGIC!r})")
    head_len = _FRAME_HEAD.size + 4 * n_checks
    if len(data) < head_len + 4:
        raise BitstreamError(f"{where}: cut short inside the frame header")
    checks = struct.unpack_from(f"<{n_checks}I", data, _FRAME_HEAD.size)
    return head_len + 4, length, checks


def unframe(data: bytes, where: str = "string") -> tuple[bytes, tuple[int, ...]]:
    """(payload, checks) of one frame; raises :class:`BitstreamError` on any damage."""
    if not isinstance(data, (bytes, bytearray)):
        raise BitstreamError(f"{where}: expected bytes, got {type(data).__name__}")
    head, length, checks = _frame_size(data, where)
    payload = bytes(data[head:])
    if len(payload) != length:
        raise BitstreamError(f"{where}: cut short or padded: header says {length} payload bytes, found {len(payload)}")
    (crc,) = struct.unpack_from("<I", data, head - 4)
    if crc32(bytes(data[:head - 4]) + payload) != crc:
        raise BitstreamError(f"{where}: corrupt (crc32 mismatch; flipped or altered bytes)")
    return payload, checks


@dataclass(frozen=True)
class Container:
    """One compressed image: its framed strings (one per latent), latent shape and image size."""

    fingerprint: bytes
    size: tuple[int, int]
    shape: tuple[int, int]
    strings: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        """The container's bytes: its header, the header's crc32, then the framed strings."""
        head = _CONT_HEAD.pack(CONTAINER_MAGIC, VERSION, self.fingerprint[:8].ljust(8, b"\0"), *self.size,
                               *self.shape, len(self.strings))
        return head + struct.pack("<I", crc32(head)) + b"".join(self.strings)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "bitstream") -> Container:
        """Parse and verify a container; every frame is checked (see :func:`unframe`)."""
        if len(data) < 5 or bytes(data[:4]) != CONTAINER_MAGIC:
            raise BitstreamError(f"{where}: not a liccs bitstream (expected it to start with {CONTAINER_MAGIC!r})")
        if data[4] != VERSION:
            raise BitstreamError(f"{where}: container version {data[4]}, this liccs reads version {VERSION}")
        if len(data) < _CONT_HEAD.size + 4:
            raise BitstreamError(f"{where}: cut short inside the header")
        if crc32(bytes(data[:_CONT_HEAD.size])) != struct.unpack_from("<I", data, _CONT_HEAD.size)[0]:
            raise BitstreamError(f"{where}: header is corrupt (checksum mismatch)")
        _, _, fp, h, w, sh, sw, count = _CONT_HEAD.unpack_from(data)
        pos, strings = _CONT_HEAD.size + 4, []
        for i in range(count):
            head, length, _ = _frame_size(memoryview(data)[pos:], f"{where}: string {i}")
            end = pos + head + length
            if end > len(data):
                raise BitstreamError(f"{where}: string {i} cut short ({len(data) - pos - head} of {length} bytes)")
            strings.append(bytes(data[pos:end]))
            unframe(strings[-1], f"{where}: string {i}")
            pos = end
        if pos != len(data):
            raise BitstreamError(f"{where}: {len(data) - pos} unexpected bytes after the last string")
        return cls(fp, (h, w), (sh, sw), tuple(strings))
