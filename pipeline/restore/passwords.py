"""Random throw-away passwords for restored users.

A restore never knows (and never stores) a user's real password: Cognito does not export password hashes. Each
restored user gets a fresh random password that nobody learns, so the user signs in again through "forgot
password". These values must never be logged, returned, or written anywhere.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

MIN_LENGTH = 20
MAX_LENGTH = 99  # Cognito accepts at most 99 characters (its MinimumLength is at most 99 too)
# Cognito's special characters, without the space (accepted only inside a password, a needless edge).
SYMBOLS = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-"
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, SYMBOLS)


def _length(policy: Mapping[str, Any] | None) -> int:
    minimum = int((policy or {}).get("MinimumLength") or 0)
    return min(MAX_LENGTH, max(MIN_LENGTH, minimum))


def random_password(policy: Mapping[str, Any] | None) -> str:
    """A password satisfying any Cognito PasswordPolicy of at most 99 characters.

    Every character class is always included, whatever the policy requires: a stricter password is still valid,
    and the pool's policy may have been tightened since the backup.
    """
    rng = secrets.SystemRandom()
    alphabet = "".join(_CLASSES)
    chars = [secrets.choice(cls) for cls in _CLASSES]
    chars += [secrets.choice(alphabet) for _ in range(_length(policy) - len(chars))]
    rng.shuffle(chars)
    return "".join(chars)
