"""Where devstack keeps things: a cache for built components, a run directory for live ones.

Both live outside the repository. Override with KUO_CACHE_DIR and DEVSTACK_RUN_DIR.
"""

import os
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kafka-usecase-operator"
    return Path(os.environ.get("KUO_CACHE_DIR", default))


def bin_dir() -> Path:
    return cache_dir() / "bin"


def kafka_libs(version: str) -> Path:
    return cache_dir() / "kafka" / version / "libs"


def kwok_stages_file() -> Path:
    return cache_dir() / "kwok" / "stages.yaml"


def run_dir() -> Path:
    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "kafka-usecase-operator"
    return Path(os.environ.get("DEVSTACK_RUN_DIR", default / "devstack"))
