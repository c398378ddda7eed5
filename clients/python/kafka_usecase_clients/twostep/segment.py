"""The on-disk format shared by the writer and the forwarder (standard library only).

A directory holds segment files named `<writer-id>-<index>.open` while their writer appends to them
and `<writer-id>-<index>.seg` once closed (an atomic rename). A writer holds an exclusive `flock` on
its open segment, so a reader can tell an open segment whose writer died (the lock is free) from one
still being written. Each segment starts with an 8-byte file header, then records:

    sync     2 bytes  b"\\xd2\\x57": lets a reader find the next record after a corrupt one
    length   u32      length of the body
    crc      u32      CRC-32 of the body
    body     timestamp_ms u64, sequence u64, topic length u16, header count u16, key length i32
             (-1: no key), then the topic (UTF-8), the key, each header (name length u16, value
             length u32, name UTF-8, value), and the value: the rest of the body.

All integers are big-endian. `sequence` counts a writer's events from 0: with the writer id it is the
event's identity, which the forwarder sends as the `twostep.id` header so that duplicates can be
counted downstream.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Sequence

FILE_HEADER = b"2STEP\x00\x00\x01"
SYNC = b"\xd2\x57"
FRAME = struct.Struct(">2sII")  # sync, body length, CRC-32 of the body
BODY = struct.Struct(">QQHHi")  # timestamp_ms, sequence, topic length, header count, key length
HEADER = struct.Struct(">HI")
HEAD = struct.Struct(">2sIIQQHHi")  # FRAME then BODY, read at once
MAX_RECORD_BYTES = 16 * 1024 * 1024
OPEN, CLOSED = ".open", ".seg"

Headers = Sequence[tuple[str, bytes]]  # a list, or () when there are none


class Record(NamedTuple):
    offset: int  # where the record starts in its segment
    end: int  # where the next one starts
    timestamp_ms: int
    sequence: int
    topic: str
    key: bytes | None
    headers: Headers
    value: bytes


class Corrupt(Exception):
    """Bytes at `offset` are not a valid record; the next valid one starts at `resume` (or the data
    ends before one is found: `resume` is None)."""

    def __init__(self, offset: int, resume: int | None, why: str):
        super().__init__(f"corrupt record at byte {offset}: {why}")
        self.offset, self.resume, self.why = offset, resume, why


def encode(timestamp_ms: int, sequence: int, topic: str, value: bytes, key: bytes | None = None,
           headers: Headers | None = None) -> bytes:
    topic_bytes = topic.encode()
    parts = [BODY.pack(timestamp_ms, sequence, len(topic_bytes), len(headers or ()), -1 if key is None else len(key)),
             topic_bytes]
    if key is not None:
        parts.append(key)
    for name, header_value in headers or ():
        name_bytes = name.encode()
        parts += [HEADER.pack(len(name_bytes), len(header_value)), name_bytes, header_value]
    parts.append(value)
    body = b"".join(parts)
    return FRAME.pack(SYNC, len(body), zlib.crc32(body)) + body


def decode(buffer: bytes, start: int = 0, base: int = 0, limit: int | None = None) -> tuple[list[Record], int]:
    """Up to `limit` complete records in buffer[start:], and where the next one starts. Offsets are
    `base` + the position in the buffer. Raises Corrupt on a record that is complete but invalid
    (the records before it are in the exception's `records`)."""
    records: list[Record] = []
    position, size = start, len(buffer)
    view = memoryview(buffer)
    unpack_head, head_size, crc32 = HEAD.unpack_from, HEAD.size, zlib.crc32
    topics: dict[bytes, str] = {}
    stop = size - head_size
    remaining = limit if limit is not None else -1
    while position <= stop and remaining != 0:
        sync, length, crc, timestamp_ms, sequence, topic_length, header_count, key_length = \
            unpack_head(buffer, position)
        body_start = position + FRAME.size
        end = body_start + length
        if sync != SYNC or length < BODY.size or length > MAX_RECORD_BYTES:
            raise _corrupt(buffer, position, base, records, "bad frame (sync or length)")
        if end > size:
            break  # not all written (yet)
        if crc32(view[body_start:end]) != crc:
            raise _corrupt(buffer, position, base, records, "CRC mismatch")
        cursor = position + head_size
        raw_topic = buffer[cursor:cursor + topic_length]
        topic = topics.get(raw_topic)
        if topic is not None and key_length < 0 and not header_count:  # the common case, kept cheap
            records.append(Record(base + position, base + end, timestamp_ms, sequence, topic, None, (),
                                  buffer[cursor + topic_length:end]))
            position = end
            remaining -= 1
            continue
        try:
            if topic is None:
                topic = topics[raw_topic] = raw_topic.decode()
            cursor += topic_length
            key = None
            if key_length >= 0:
                key, cursor = buffer[cursor:cursor + key_length], cursor + key_length
            headers = []
            for _ in range(header_count):
                name_length, value_length = HEADER.unpack_from(buffer, cursor)
                cursor += HEADER.size
                name = buffer[cursor:cursor + name_length].decode()
                cursor += name_length
                headers.append((name, buffer[cursor:cursor + value_length]))
                cursor += value_length
            if cursor > end:
                raise ValueError("fields run past the record")
        except (ValueError, struct.error) as error:  # a valid CRC over a malformed body: a writer bug
            raise _corrupt(buffer, position, base, records, f"malformed body ({error})") from None
        records.append(Record(base + position, base + end, timestamp_ms, sequence, topic, key, headers,
                              buffer[cursor:end]))
        position = end
        remaining -= 1
    return records, base + position


def record_length(buffer: bytes, start: int = 0) -> int | None:
    """The whole length of the record whose frame starts at `start`, if the frame is there."""
    if len(buffer) - start < FRAME.size:
        return None
    return FRAME.size + FRAME.unpack_from(buffer, start)[1]


def next_valid(buffer: bytes, after: int) -> int | None:
    """Where the first record that checks out (sync, length, CRC) starts after `after`, if any."""
    candidate = buffer.find(SYNC, after + 1)
    while candidate != -1:
        if candidate + FRAME.size <= len(buffer):
            _, length, crc = FRAME.unpack_from(buffer, candidate)
            end = candidate + FRAME.size + length
            if BODY.size <= length <= MAX_RECORD_BYTES and end <= len(buffer) and \
                    zlib.crc32(memoryview(buffer)[candidate + FRAME.size:end]) == crc:
                return candidate
        candidate = buffer.find(SYNC, candidate + 1)
    return None


def _corrupt(buffer: bytes, position: int, base: int, records: list[Record], why: str) -> Corrupt:
    resume = next_valid(buffer, position)
    error = Corrupt(base + position, None if resume is None else base + resume, why)
    error.records = records
    return error


def segment_name(writer_id: str, index: int, state: str) -> str:
    return f"{writer_id}-{index:08d}{state}"


def segments(directory: Path) -> list[Path]:
    """Every segment in the directory, open and closed, oldest index first per writer."""
    found = [p for p in directory.iterdir() if p.suffix in (OPEN, CLOSED)]
    return sorted(found, key=lambda p: p.stem)
