"""Identifiers are checked whole and in ASCII: no trailing newline, no Unicode digits or letters slip through."""

from __future__ import annotations

import pytest

from pipeline.cognito.shards import check_prefix
from pipeline.core.errors import InvalidRequest
from pipeline.core.layout import check_backup_id, check_pool_id
from pipeline.sealing import manifest

GOOD_POOL = "eu-west-1_AbC123"
GOOD_BACKUP = "20261202T120000Z-0a1b2c"


def test_good_identifiers_pass() -> None:
    assert check_pool_id(GOOD_POOL) == GOOD_POOL
    assert check_backup_id(GOOD_BACKUP) == GOOD_BACKUP


@pytest.mark.parametrize(
    "pool_id",
    [
        GOOD_POOL + "\n",
        "eu-west-1_AbC\u0663",
        "eu-w\u00e9st-1_AbC123",
        "eu-west-1_AbC123\n\n",
        " " + GOOD_POOL,
    ],
)
def test_pool_ids_with_a_newline_or_non_ascii_are_refused(pool_id: str) -> None:
    with pytest.raises(InvalidRequest):
        check_pool_id(pool_id)


@pytest.mark.parametrize("backup_id", [GOOD_BACKUP + "\n", "2026120\u0662T120000Z-0a1b2c"])
def test_backup_ids_with_a_newline_or_unicode_digits_are_refused(backup_id: str) -> None:
    with pytest.raises(InvalidRequest):
        check_backup_id(backup_id)


@pytest.mark.parametrize("prefix", ["a\n", "\u0661"])
def test_shard_prefixes_are_ascii_hex_only(prefix: str) -> None:
    with pytest.raises(InvalidRequest):
        check_prefix(prefix)


def test_manifest_object_names_are_matched_whole() -> None:
    assert manifest._USERS_NAME.fullmatch("users/0a/part-00001.bin")
    assert not manifest._USERS_NAME.fullmatch("users/0a/part-00001.bin\n")
    assert not manifest._MEMBERSHIPS_NAME.fullmatch("memberships/\u0660\u0660\u0661/part-00001.bin")
