"""The backup state machine's steps and the verification of a written backup."""
