"""Helper modules shared by the tests, imported as ``tests.helpers.<module>`` (never through conftest)."""
