"""The indexed ListUsers / ListUsersInGroup paging answers exactly what moto's own paging answers, page by page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.cognitoidp.models import CognitoIdpBackend, cognitoidp_backends
from moto.core.exceptions import InvalidToken
from moto.core.models import DEFAULT_ACCOUNT_ID

from pipeline.operator.local_engine import moto_compat, moto_paging

USERS = 70
Pool = tuple[Any, CognitoIdpBackend, str]
FILTERS = [
    None,
    'sub ^= "a"',
    'sub ^= "4"',
    'sub ^= ""',
    'status = "Disabled"',
    'cognito:user_status = "FORCE_CHANGE_PASSWORD"',
    'username ^= "user0001"',
    'email = "user00042@example.com"',
    'given_name ^= "B"',
]
LIMITS = [None, 1, 7, 60]


@pytest.fixture
def pool() -> Iterator[Pool]:
    with mock_aws():
        moto_compat.install()
        cognito = boto3.client("cognito-idp", region_name="us-east-1")
        pool_id = cognito.create_user_pool(PoolName="paging")["UserPool"]["Id"]
        for group in ("odd", "tens"):
            cognito.create_group(UserPoolId=pool_id, GroupName=group)
        for i in range(USERS):
            name = f"user{i:05d}"
            cognito.admin_create_user(
                UserPoolId=pool_id,
                Username=name,
                MessageAction="SUPPRESS",
                UserAttributes=[
                    {"Name": "email", "Value": f"{name}@example.com"},
                    {"Name": "given_name", "Value": "Ben" if i % 3 else "Ada"},
                ],
            )
            if i % 2:
                cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=name, GroupName="odd")
            if i % 10 == 0:
                cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=name, GroupName="tens")
            if i % 7 == 0:
                cognito.admin_disable_user(UserPoolId=pool_id, Username=name)
        yield cognito, cognitoidp_backends[DEFAULT_ACCOUNT_ID]["us-east-1"], pool_id


def _moto_own(method: str) -> Any:
    """moto's own paginated method, which the patch wraps (and keeps as ``__wrapped__``)."""
    patched: Any = getattr(CognitoIdpBackend, method)
    return patched.__wrapped__


def _moto_pages(
    backend: CognitoIdpBackend, method: str, *args: Any, **kwargs: Any
) -> list[tuple[list[str], bool]]:
    """Pages from moto's own, unpatched paging (the function the patch wraps)."""
    original = _moto_own(method)
    token_name = "pagination_token" if method == "list_users" else "next_token"
    pages: list[tuple[list[str], bool]] = []
    token = None
    while True:
        users, token = original(backend, *args, **kwargs, **{token_name: token})
        pages.append(([u.username for u in users], token is not None))
        if token is None:
            return pages


def _api_pages(
    cognito: Any, pool_id: str, *, filt: str | None, limit: int | None
) -> list[tuple[list[str], bool]]:
    pages: list[tuple[list[str], bool]] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool_id}
    if filt is not None:
        kwargs["Filter"] = filt
    if limit is not None:
        kwargs["Limit"] = limit
    while True:
        page = cognito.list_users(**kwargs)
        token = page.get("PaginationToken")
        pages.append(([u["Username"] for u in page["Users"]], token is not None))
        if token is None:
            return pages
        kwargs["PaginationToken"] = token


def test_the_patch_is_installed_on_moto_backend(pool: Pool) -> None:
    assert getattr(CognitoIdpBackend, "_cognito_backuper_paging", False)
    assert _moto_own("list_users") is not CognitoIdpBackend.list_users


@pytest.mark.parametrize("limit", LIMITS)
def test_list_users_pages_match_moto_for_every_filter(pool: Pool, limit: int | None) -> None:
    cognito, backend, pool_id = pool
    for filt in FILTERS:
        expected = _moto_pages(backend, "list_users", pool_id, filt, limit=limit)
        assert _api_pages(cognito, pool_id, filt=filt, limit=limit) == expected, filt
        # And the patched backend method itself, called the way moto's response layer calls it.
        assert _backend_pages(backend, pool_id, filt, limit) == expected, filt
    # The filters select something (the comparison is not between empty listings).
    assert sum(len(p) for p, _ in _moto_pages(backend, "list_users", pool_id, 'username ^= "user0001"')) == 10
    assert sum(len(p) for p, _ in _moto_pages(backend, "list_users", pool_id, 'status = "Disabled"')) == 10


def _backend_pages(
    backend: CognitoIdpBackend, pool_id: str, filt: str | None, limit: int | None
) -> list[tuple[list[str], bool]]:
    pages: list[tuple[list[str], bool]] = []
    token = None
    while True:
        users, token = backend.list_users(pool_id, filt, limit=limit, pagination_token=token)
        pages.append(([u.username for u in users], token is not None))
        if token is None:
            return pages


@pytest.mark.parametrize("group", ["odd", "tens"])
def test_list_users_in_group_pages_match_moto(pool: Pool, group: str) -> None:
    cognito, backend, pool_id = pool
    for limit in LIMITS:
        expected = _moto_pages(backend, "list_users_in_group", pool_id, group, limit=limit)
        pages: list[tuple[list[str], bool]] = []
        kwargs: dict[str, Any] = {"UserPoolId": pool_id, "GroupName": group}
        if limit is not None:
            kwargs["Limit"] = limit
        while True:
            page = cognito.list_users_in_group(**kwargs)
            token = page.get("NextToken")
            pages.append(([u["Username"] for u in page["Users"]], token is not None))
            if token is None:
                break
            kwargs["NextToken"] = token
        assert pages == expected, limit
    assert sum(len(p) for p, _ in expected) == (35 if group == "odd" else 7)


def test_tokens_are_moto_s_tokens(pool: Pool) -> None:
    cognito, backend, pool_id = pool
    original = _moto_own("list_users")
    _, moto_token = original(backend, pool_id, 'given_name ^= "B"', limit=3)
    patched = cognito.list_users(UserPoolId=pool_id, Filter='given_name ^= "B"', Limit=3)
    assert moto_token is not None
    assert patched["PaginationToken"] == moto_token


def test_a_token_for_a_user_no_longer_listed_fails_as_moto_fails(
    pool: Pool,
) -> None:
    cognito, backend, pool_id = pool
    first = cognito.list_users(UserPoolId=pool_id, Limit=5)
    next_user = cognito.list_users(UserPoolId=pool_id, Limit=1, PaginationToken=first["PaginationToken"])[
        "Users"
    ][0]
    cognito.admin_delete_user(UserPoolId=pool_id, Username=next_user["Username"])
    original = _moto_own("list_users")
    with pytest.raises(InvalidToken):
        original(backend, pool_id, None, limit=5, pagination_token=first["PaginationToken"])
    with pytest.raises(InvalidToken):
        backend.list_users(pool_id, None, limit=5, pagination_token=first["PaginationToken"])
    with pytest.raises(cognito.exceptions.ClientError):
        cognito.list_users(UserPoolId=pool_id, Limit=5, PaginationToken=first["PaginationToken"])
    # A token from another filter is refused too, as moto refuses it (the token carries no filter here, so both
    # read it the same way: compare outcomes rather than assume one).
    with pytest.raises(InvalidToken):
        backend.list_users(pool_id, None, pagination_token="not-a-token")


def test_the_cache_is_dropped_on_create_delete_and_update(pool: Pool) -> None:
    cognito, backend, pool_id = pool

    def same_as_moto(filt: str | None) -> list[tuple[list[str], bool]]:
        expected = _moto_pages(backend, "list_users", pool_id, filt, limit=50)
        assert _api_pages(cognito, pool_id, filt=filt, limit=50) == expected
        return expected

    before = same_as_moto(None)
    cognito.admin_create_user(UserPoolId=pool_id, Username="late-user", MessageAction="SUPPRESS")
    after_create = same_as_moto(None)
    assert after_create != before
    assert "late-user" in after_create[-1][0]

    cognito.admin_delete_user(UserPoolId=pool_id, Username="user00003")
    after_delete = same_as_moto(None)
    assert all("user00003" not in page for page, _ in after_delete)

    disabled_before = same_as_moto('status = "Disabled"')
    cognito.admin_disable_user(UserPoolId=pool_id, Username="user00001")
    disabled_after = same_as_moto('status = "Disabled"')
    assert sum(len(p) for p, _ in disabled_after) == sum(len(p) for p, _ in disabled_before) + 1

    cognito.admin_update_user_attributes(
        UserPoolId=pool_id, Username="user00002", UserAttributes=[{"Name": "given_name", "Value": "Zed"}]
    )
    assert ["user00002"] in [page for page, _ in same_as_moto('given_name = "Zed"')]

    cognito.admin_remove_user_from_group(UserPoolId=pool_id, Username="user00001", GroupName="odd")
    members = cognito.list_users_in_group(UserPoolId=pool_id, GroupName="odd", Limit=60)["Users"]
    assert "user00001" not in [u["Username"] for u in members]


def test_a_direct_change_to_the_users_dictionary_drops_the_cache(
    pool: Pool,
) -> None:
    cognito, backend, pool_id = pool
    listed = _api_pages(cognito, pool_id, filt=None, limit=60)
    victim = listed[0][0][0]
    del backend.user_pools[pool_id].users[victim]  # bypasses every backend method
    assert victim not in [
        name for page, _ in _api_pages(cognito, pool_id, filt=None, limit=60) for name in page
    ]


def test_mutating_backend_methods_bump_the_generation_and_reads_do_not(
    pool: Pool,
) -> None:
    cognito, _, pool_id = pool
    before = moto_paging.generation()
    cognito.list_users(UserPoolId=pool_id, Limit=5)
    cognito.describe_user_pool(UserPoolId=pool_id)
    cognito.admin_get_user(UserPoolId=pool_id, Username="user00000")
    assert moto_paging.generation() == before
    cognito.admin_enable_user(UserPoolId=pool_id, Username="user00000")
    assert moto_paging.generation() > before


def test_unknown_pools_and_bad_filters_fail_as_in_moto(pool: Pool) -> None:
    cognito, _, pool_id = pool
    with pytest.raises(cognito.exceptions.ResourceNotFoundException):
        cognito.list_users(UserPoolId="us-east-1_missing")
    with pytest.raises(cognito.exceptions.InvalidParameterException):
        cognito.list_users(UserPoolId=pool_id, Filter='nickname = "x"')
    with pytest.raises(cognito.exceptions.ResourceNotFoundException):
        cognito.list_users_in_group(UserPoolId=pool_id, GroupName="nobody")
