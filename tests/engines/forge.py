"""An attacker's tools for the tests: rewrite a ``.liccs`` container's header or frames and recompute their crc32s,
so that the file stays "valid" to the checksums and only the decoder's own checks can refuse it."""

from __future__ import annotations

import struct

from liccs.engines.bitstream import _CONT_HEAD, _FRAME_HEAD, crc32

#: the container header's fields, in order (``_CONT_HEAD``)
HEADER_FIELDS = ("magic", "version", "fingerprint", "height", "width", "latent_h", "latent_w", "n_strings")
#: a frame header's fields (``_FRAME_HEAD``), then its checks and crc32
FRAME_FIELDS = ("magic", "n_checks", "length")
HEAD_END = _CONT_HEAD.size + 4  # the container header and its crc32


def header(data: bytes) -> dict[str, object]:
    """The container header's fields."""
    return dict(zip(HEADER_FIELDS, _CONT_HEAD.unpack_from(data), strict=True))


def with_header(data: bytes, forge: bool = True, **fields: object) -> bytes:
    """``data`` with header ``fields`` replaced; the header crc32 recomputed when ``forge``."""
    values = header(data) | fields
    head = _CONT_HEAD.pack(*(values[f] for f in HEADER_FIELDS))
    crc = struct.pack("<I", crc32(head)) if forge else data[_CONT_HEAD.size:HEAD_END]
    return head + crc + data[HEAD_END:]


def frame_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(start, header end, end) of each frame of a well-formed container, in order."""
    spans, pos = [], HEAD_END
    while pos + _FRAME_HEAD.size <= len(data):
        _, n_checks, length = _FRAME_HEAD.unpack_from(data, pos)
        head_end = pos + _FRAME_HEAD.size + 4 * n_checks + 4
        spans.append((pos, head_end, head_end + length))
        pos = head_end + length
    return spans


def reframe(data: bytes, i: int, forge: bool = True, payload: bytes | None = None, checks: list[int] | None = None,
            **fields: int) -> bytes:
    """``data`` with frame ``i``'s header ``fields``, checks or payload replaced; its crc32 recomputed when
    ``forge`` (the length field follows a new payload unless given)."""
    start, head_end, end = frame_spans(data)[i]
    magic, n_checks, length = _FRAME_HEAD.unpack_from(data, start)
    old_checks = list(struct.unpack_from(f"<{n_checks}I", data, start + _FRAME_HEAD.size))
    checks = old_checks if checks is None else checks
    body = data[head_end:end] if payload is None else payload
    values = {"magic": magic, "n_checks": len(checks), "length": len(body)} | fields
    head = _FRAME_HEAD.pack(*(values[f] for f in FRAME_FIELDS)) + b"".join(struct.pack("<I", c) for c in checks)
    crc = struct.pack("<I", crc32(head + body)) if forge else data[head_end - 4:head_end]
    return data[:start] + head + crc + body + data[end:]


def refresh(data: bytes) -> bytes:
    """``data`` with every crc32 recomputed that its (possibly damaged) structure lets one find: the header's, then
    each frame's while the frames parse; what follows an unparsable part is left as it is."""
    if len(data) < HEAD_END:
        return data
    out = bytearray(data[:_CONT_HEAD.size] + struct.pack("<I", crc32(data[:_CONT_HEAD.size])) + data[HEAD_END:])
    pos = HEAD_END
    while pos + _FRAME_HEAD.size <= len(out):
        _, n_checks, length = _FRAME_HEAD.unpack_from(out, pos)
        head_end = pos + _FRAME_HEAD.size + 4 * n_checks + 4
        if head_end + length > len(out):
            break
        body = bytes(out[pos:head_end - 4] + out[head_end:head_end + length])
        out[head_end - 4:head_end] = struct.pack("<I", crc32(body))
        pos = head_end + length
    return bytes(out)
