"""The CDK tests' fixtures; synthesis lives in tests/helpers/synth.py."""

from tests.helpers.synth import any_synth, default_synth, options_synth

__all__ = ["any_synth", "default_synth", "options_synth"]
