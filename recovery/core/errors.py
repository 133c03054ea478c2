"""The one base of every error compute-recover raises on purpose.

Library code raises these and never prints or exits; `recovery.cli.exits` is the one place that
maps them to a one-line message and an exit code. An error that is not a `RecoveryError` is a bug
and keeps its traceback."""


class RecoveryError(Exception):
    """An expected failure with a message meant for the operator: what went wrong and the fix."""
