"""The one exception type for bad input at the project's edges.

Raise `UserError` where a file, command line, config or checkpoint enters the
program and is wrong. The message is one line that says what is wrong and what
to do. The CLI prints it without a traceback and exits with status 2.
"""


class UserError(Exception):
    """Bad input from a user: a one-line message, no traceback, exit code 2."""
