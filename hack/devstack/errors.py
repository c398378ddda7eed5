class DevstackError(Exception):
    """A failure the user can act on; the CLI prints its message as one line, no traceback."""
