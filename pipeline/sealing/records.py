"""Serialisation of backup records: JSON Lines, then gzip (compress before encrypting).

The output is deterministic (sorted keys, compact separators, gzip mtime 0), so a retried export task writes a
part whose plaintext is byte-identical to the first attempt's.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.core.errors import IntegrityError

# Bounds what a corrupt or hostile part can make us inflate in memory (a part holds at most a few MB).
MAX_PLAINTEXT_BYTES = 512 * 1024 * 1024


def encode_records(records: Sequence[Mapping[str, Any]]) -> bytes:
    lines = [
        json.dumps(dict(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
        for record in records
    ]
    return gzip.compress("".join(lines).encode("utf-8"), compresslevel=6, mtime=0)


def decode_records(data: bytes) -> list[dict[str, Any]]:
    try:
        text = _inflate(data).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise IntegrityError("part is not valid gzip-compressed UTF-8 JSON Lines") from exc
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            # The line number locates the damage without echoing its content (it may hold user data).
            raise IntegrityError(f"malformed record at line {number} of part") from exc
        if not isinstance(record, dict):
            raise IntegrityError(f"record at line {number} of part is not a JSON object")
        records.append(record)
    return records


def _inflate(data: bytes) -> bytes:
    # gzip framing (not raw zlib) via wbits=31; reading in bounded steps stops a decompression bomb early.
    inflater = zlib.decompressobj(wbits=31)
    out = inflater.decompress(data, MAX_PLAINTEXT_BYTES + 1)
    if len(out) > MAX_PLAINTEXT_BYTES or inflater.unconsumed_tail:
        raise IntegrityError("part inflates beyond the size limit")
    if not inflater.eof:
        raise IntegrityError("part is truncated")
    if inflater.unused_data:
        raise IntegrityError("part has trailing bytes after its gzip stream")
    return out
