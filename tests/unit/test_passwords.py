"""Random restore passwords satisfy every Cognito password policy and never repeat."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest

from pipeline.restore.passwords import MAX_LENGTH, SYMBOLS, random_password

POLICIES: list[dict[str, Any] | None] = [
    None,
    {},
    {"MinimumLength": 6, "RequireUppercase": False, "RequireLowercase": False},
    {
        "MinimumLength": 12,
        "RequireUppercase": True,
        "RequireLowercase": True,
        "RequireNumbers": True,
        "RequireSymbols": True,
    },
    {"MinimumLength": 64, "RequireSymbols": True},
    {"MinimumLength": 99, "RequireNumbers": True},
]


def _satisfies(password: str, policy: dict[str, Any] | None) -> bool:
    """Cognito's rules, written independently of the generator."""
    policy = policy or {}
    checks = [
        int(policy.get("MinimumLength", 8)) <= len(password) <= MAX_LENGTH,
        not policy.get("RequireUppercase", True) or bool(re.search("[A-Z]", password)),
        not policy.get("RequireLowercase", True) or bool(re.search("[a-z]", password)),
        not policy.get("RequireNumbers", True) or bool(re.search("[0-9]", password)),
        not policy.get("RequireSymbols", True) or any(c in SYMBOLS for c in password),
    ]
    return all(checks)


@pytest.mark.parametrize("policy", POLICIES)
def test_password_satisfies_the_policy(policy: dict[str, Any] | None) -> None:
    for _ in range(200):
        password = random_password(policy)
        assert _satisfies(password, policy)
        assert len(password) >= 20
        assert password == password.strip()


def test_password_uses_only_cognito_characters() -> None:
    allowed = set(string.ascii_letters + string.digits + SYMBOLS)
    for _ in range(200):
        assert set(random_password(None)) <= allowed


def test_symbols_are_cognitos_set() -> None:
    cognito = [
        "^",
        "$",
        "*",
        ".",
        "[",
        "]",
        "{",
        "}",
        "(",
        ")",
        "?",
        '"',
        "!",
        "@",
        "#",
        "%",
        "&",
        "/",
        "\\",
        ",",
        ">",
        "<",
        "'",
        ":",
        ";",
        "|",
        "_",
        "~",
        "`",
        "=",
        "+",
        "-",
    ]
    assert sorted(SYMBOLS) == sorted(cognito)


def test_passwords_do_not_repeat() -> None:
    assert len({random_password(None) for _ in range(1000)}) == 1000


def test_length_follows_a_long_minimum_but_stays_within_cognitos_maximum() -> None:
    assert len(random_password({"MinimumLength": 50})) == 50
    assert len(random_password({"MinimumLength": 200})) == MAX_LENGTH
