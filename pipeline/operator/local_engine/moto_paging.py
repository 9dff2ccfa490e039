"""O(page) paging for moto's Cognito ListUsers and ListUsersInGroup.

moto (5.2.x) builds the whole result list on every page: ``list_users`` copies and filters every user of the pool,
``list_users_in_group`` tests every user of the pool for membership, and its generic paginator then finds the
page's first user by a linear scan for the token's user id. Reading a pool page by page is therefore quadratic
(50,000 users: about 33 s for one listing, and one shard filter per page repeats it).

This patch keeps moto's results, order and tokens exactly, and caches per backend, pool and filter (or group):
the result list moto's own function returns, plus a map from user id to position, so a page costs a dictionary
lookup and a slice. Every Cognito backend method that is not a read bumps a generation counter, which drops the
cache; so does any change to the pool's user dictionary itself.

Offered upstream (getmoto/moto) as an issue: the same idea, kept inside ``moto.utilities.paginator`` (an opt-in
cached index for paginated results that only change through the backend's mutating methods).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_MARK = "_cognito_backuper_paging"
_CACHE_ATTR = "_cognito_backuper_paging_cache"
_CACHE_LOCK_ATTR = "_cognito_backuper_paging_lock"

# Backend methods (and the API actions they serve) that never change a pool, its users or its groups.
READ_METHODS = frozenset(
    {
        "admin_get_user",
        "admin_list_groups_for_user",
        "describe_identity_provider",
        "describe_resource_server",
        "describe_user_pool",
        "describe_user_pool_client",
        "describe_user_pool_domain",
        "get_group",
        "get_user",
        "get_user_pool_mfa_config",
        "list_groups",
        "list_identity_providers",
        "list_resource_servers",
        "list_user_pool_clients",
        "list_user_pools",
        "list_users",
        "list_users_in_group",
    }
)

# Bumped by every other backend method, before and after it runs: a cached listing is never older than it.
_generation = itertools.count()
_current = [next(_generation)]


def generation() -> int:
    return _current[0]


def _bump() -> None:
    _current[0] = next(_generation)


@dataclass(frozen=True)
class _Listing:
    generation: int
    users_dict_id: int
    users_count: int
    results: list[Any]
    position: dict[str, int]


def install() -> None:
    """Patch moto's Cognito backend class, once per process."""
    from moto.cognitoidp.models import CognitoIdpBackend

    cls: Any = CognitoIdpBackend
    if getattr(cls, _MARK, False):
        return
    for name, value in list(vars(cls).items()):
        if name.startswith("_") or name in READ_METHODS or not callable(value) or isinstance(value, type):
            continue
        if isinstance(value, (staticmethod, classmethod, property)):
            continue
        setattr(cls, name, _mutating(value))
    cls.list_users = _indexed(cls.list_users, "list_users")
    cls.list_users_in_group = _indexed(cls.list_users_in_group, "list_users_in_group")
    setattr(cls, _MARK, True)


def _mutating(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _bump()
        try:
            return method(*args, **kwargs)
        finally:
            _bump()

    return wrapper


def _indexed(paginated: Callable[..., Any], method: str) -> Callable[..., Any]:
    """Replace moto's ``@paginate`` wrapper of ``method`` by the same paging over a cached, indexed result list."""
    from moto.cognitoidp.utils import PAGINATION_MODEL
    from moto.core.exceptions import InvalidToken
    from moto.utilities.paginator import Paginator

    unpaged: Callable[..., list[Any]] = paginated.__wrapped__  # type: ignore[attr-defined]
    signature = inspect.signature(unpaged)
    config: dict[str, Any] = PAGINATION_MODEL[method]
    token_name: str = config["input_token"]
    limit_name: str = config["limit_key"]
    unique = config["unique_attribute"]

    @functools.wraps(paginated)
    def paged(self: Any, *args: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        # What moto's decorator does, in its order: token checked first, then the listing, then the page.
        input_kwargs = {k: v for k, v in kwargs.items() if k not in (token_name, limit_name)}
        paginator = Paginator(
            max_results=kwargs.get(limit_name),
            max_results_default=config["limit_default"],
            starting_token=kwargs.get(token_name),
            unique_attribute=unique,
            param_values_to_check=input_kwargs,
            fail_on_invalid_token=config.get("fail_on_invalid_token", True),
        )
        bound = signature.bind(self, *args, **input_kwargs)
        key = tuple(bound.arguments.values())[1:]  # (pool id, filter or group name)
        listing = _listing(self, method, key, lambda: unpaged(*bound.args, **bound.kwargs))
        results = listing.results
        start = 0
        if kwargs.get(token_name):
            parsed = paginator._parsed_token
            found = None if parsed is None else listing.position.get(parsed["uniqueAttributes"])
            if found is None:
                raise InvalidToken("Resource not found!")
            start = found
        end = min(start + paginator._max_results, len(results))
        page = results[start:end]
        token = paginator._build_next_token(results[end]) if page and end < len(results) else None
        return page, token

    return paged


def _listing(backend: Any, method: str, key: tuple[Any, ...], compute: Callable[[], list[Any]]) -> _Listing:
    pool = backend.user_pools.get(key[0])
    users = pool.users if pool is not None else None
    cache_key = (method, *key)
    lock: threading.Lock = backend.__dict__.setdefault(_CACHE_LOCK_ATTR, threading.Lock())
    with lock:
        cache: dict[tuple[Any, ...], _Listing] = backend.__dict__.setdefault(_CACHE_ATTR, {})
        cached = cache.get(cache_key)
        if (
            cached is not None
            and users is not None
            and cached.generation == generation()
            and cached.users_dict_id == id(users)
            and cached.users_count == len(users)
        ):
            return cached
        seen_at = generation()
        results = compute()  # raises as moto does (no such pool, group or filter): nothing is cached then
        position: dict[str, int] = {}
        for index, item in enumerate(results):
            position.setdefault(str(getattr(item, "id", None)), index)
        users = backend.user_pools[key[0]].users
        listing = _Listing(seen_at, id(users), len(users), results, position)
        cache[cache_key] = listing
        return listing
