"""The demo seeder's user writes, straight into the embedded Cognito (moto's backend), for large demo pools.

Through the API each seeded user costs three to five requests, each serialised by botocore and parsed again by
moto: about 200 users/s, so a 100,000-user demo spent most of its time seeding. These five calls are the same
backend methods moto's API layer calls, with the same arguments, under the same lock; the pool they leave is
the one the API would leave. Only ``cognito-backuper demo`` uses them: the tests seed through the API, and
nothing of the pipeline itself (its reads, its restores) ever goes around the API.
"""

from __future__ import annotations

from typing import Any

from pipeline.operator.local_engine.moto_compat import cognito_writes


class DirectCognito:
    """The subset of a Cognito client that :func:`pipeline.operator.seed.seed_pool` writes users with."""

    def __init__(self, account: str, region: str) -> None:
        from moto.cognitoidp.models import cognitoidp_backends

        self._backend: Any = cognitoidp_backends[account][region]

    def sign_up(
        self, *, ClientId: str, Username: str, Password: str, UserAttributes: list[Any]
    ) -> dict[str, Any]:
        with cognito_writes():
            user, _ = self._backend.sign_up(
                client_id=ClientId, username=Username, password=Password, attributes=list(UserAttributes)
            )
        return {"UserSub": user.id}

    def admin_create_user(
        self, *, UserPoolId: str, Username: str, UserAttributes: list[Any], MessageAction: str
    ) -> dict[str, Any]:
        with cognito_writes():
            user = self._backend.admin_create_user(
                UserPoolId, Username, MessageAction, None, list(UserAttributes)
            )
        return {"User": {"Username": user.username}}

    def admin_set_user_password(
        self, *, UserPoolId: str, Username: str, Password: str, Permanent: bool
    ) -> None:
        with cognito_writes():
            self._backend.admin_set_user_password(UserPoolId, Username, Password, Permanent)

    def admin_disable_user(self, *, UserPoolId: str, Username: str) -> None:
        with cognito_writes():
            self._backend.admin_disable_user(UserPoolId, Username)

    def admin_add_user_to_group(self, *, UserPoolId: str, Username: str, GroupName: str) -> None:
        with cognito_writes():
            self._backend.admin_add_user_to_group(UserPoolId, GroupName, Username)
