"""The fault tests' fixtures; the injector and the shared steps live in tests/helpers/faults.py."""

from tests.helpers.faults import faults, full_quota

__all__ = ["faults", "full_quota"]
