"""The restore state machine's steps: request, approval, configuration, users and memberships, verification."""
