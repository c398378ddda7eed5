"""`eventually(...)` instead of sleeps: poll until a check holds, or fail saying which check."""

import time


def eventually(check, timeout: float = 90, interval: float = 0.5):
    """Return check()'s first truthy result; after `timeout` seconds fail naming the check
    (its docstring) and its last result."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {check.__doc__ or check.__name__} (last: {last!r})")
        time.sleep(interval)
