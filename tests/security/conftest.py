"""The security tests' fixtures: the synthesized template (tests/helpers/synth.py), for the IAM side of attacks."""

from tests.helpers.synth import any_synth, default_synth, options_synth

__all__ = ["any_synth", "default_synth", "options_synth"]
