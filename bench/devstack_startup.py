"""Start-up time and memory of every devstack component, cold JVMs and processes, one line out.

    make bench        (or: .venv/bin/python bench/devstack_startup.py)

Starts the control plane and both Kafka clusters (1 broker each) in a private run directory,
samples RSS once everything is up, stops everything, and prints one summary line. Refuses to run
while another devstack holds the addresses.
"""

import tempfile
import time
from pathlib import Path

from devstack import kafka, kube
from devstack.errors import DevstackError


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="devstack-bench-") as tmp:
        run_root = Path(tmp)
        stacks = []
        try:
            started = time.monotonic()
            stacks.append(kube.up(run_root))
            for mode in kafka.MODES:
                stacks.append(kafka.up(kafka.plan(mode), run_root))
            total = time.monotonic() - started
            time.sleep(5)  # let the JVMs settle after start-up
            startup = {f"{s.name}/{c}": t for s in stacks for c, t in s.startup_seconds.items()}
            rss = {f"{s.name}/{c}": m for s in stacks for c, m in s.rss_mb().items()}
        finally:
            kube.down(run_root)
            for mode in kafka.MODES:
                kafka.down(mode, run_root)
    print(f"devstack start-up (s): all {total:.1f}; " + ", ".join(f"{k} {v}" for k, v in startup.items())
          + f" | RSS (MB): total {sum(rss.values()):.0f}; " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))


if __name__ == "__main__":
    try:
        main()
    except DevstackError as error:
        raise SystemExit(f"bench: {error}")
