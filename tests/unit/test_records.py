import gzip

import pytest

from pipeline.core.errors import IntegrityError
from pipeline.sealing.records import decode_records, encode_records

RECORDS = [
    {"username": "alice", "attributes": {"email": "alice@example.com", "name": "Ålice"}, "enabled": True},
    {"enabled": False, "username": "bob"},
]


def test_round_trip() -> None:
    assert decode_records(encode_records(RECORDS)) == RECORDS


def test_encoding_is_deterministic_and_key_order_independent() -> None:
    reordered = [dict(reversed(list(r.items()))) for r in RECORDS]
    first = encode_records(RECORDS)
    assert first == encode_records(RECORDS)
    assert first == encode_records(reordered)


def test_output_is_gzip_of_sorted_compact_json_lines() -> None:
    text = gzip.decompress(encode_records(RECORDS)).decode("utf-8")
    assert text == '{"enabled":false,"username":"bob"}\n'.join(
        [
            '{"attributes":{"email":"alice@example.com","name":"Ålice"},"enabled":true,"username":"alice"}\n',
            "",
        ]
    )


def test_empty_part() -> None:
    assert decode_records(encode_records([])) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not gzip at all",
        encode_records(RECORDS)[:-5],
        gzip.compress(b'{"a":1}\n{broken\n', mtime=0),
        gzip.compress(b"[1,2]\n", mtime=0),
        gzip.compress(b"\xff\xfe\n", mtime=0),
        encode_records(RECORDS) + b"trailing",
    ],
    ids=["empty", "garbage", "truncated", "bad-json", "not-object", "not-utf8", "trailing"],
)
def test_garbage_is_an_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_records(data)


def test_error_message_never_echoes_content() -> None:
    data = gzip.compress(b'{"username":"secret-user"\n', mtime=0)
    with pytest.raises(IntegrityError) as info:
        decode_records(data)
    assert "secret-user" not in str(info.value)
