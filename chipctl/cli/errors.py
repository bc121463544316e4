"""Exit codes of `chipctl` and the error that means "invalid input" (exit code 2)."""

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


class UsageError(Exception):
    """Invalid input: printed as is, exit code 2."""
