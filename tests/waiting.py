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


class Pending(dict):
    """What is not there yet, as a check's result: false while anything is pending, so `eventually`
    keeps waiting and, when it gives up, shows what was still pending."""

    def __bool__(self) -> bool:
        return not len(self)
