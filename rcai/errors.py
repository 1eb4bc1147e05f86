"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class RcaiError(Exception):
    """Bad input from the user (file, option, table...). Message is shown as-is, no traceback."""

    exit_code = 2
