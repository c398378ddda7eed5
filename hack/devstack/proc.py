"""Background processes with a log file each, found again later through a state file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from devstack.errors import DevstackError


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise DevstackError(f"{name} not found on PATH: {hint}")
    return path


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def require_free_ports(endpoints: list[tuple[str, int]], owner: str) -> None:
    taken = [f"{host}:{port}" for host, port in endpoints if port_in_use(host, port)]
    if taken:
        raise DevstackError(
            f"{owner}: address already in use: {', '.join(taken)} "
            "(another devstack? see `devstack status`, stop it with `devstack down`)"
        )


def eventually(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None,
               alive: Callable[[], bool] | None = None) -> float:
    """Poll `check` until it is true; return the seconds it took, or raise naming `what`."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except Exception:  # a component that is still starting refuses connections: poll again
            pass
        if alive is not None and not alive():
            raise DevstackError(f"{what}: the process exited during start-up; see {log}")
        if time.monotonic() - start > timeout:
            where = f"; see {log}" if log else ""
            raise DevstackError(f"{what}: not ready after {timeout:.0f}s{where}")
        time.sleep(0.25)


@dataclass
class Stack:
    """One named group of processes (e.g. `kube`, `kafka-kraft`) under run_dir/<name>."""

    name: str
    root: Path
    config: dict = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    startup_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @classmethod
    def load(cls, name: str, run_root: Path) -> Stack | None:
        state = run_root / name / "state.json"
        if not state.exists():
            return None
        data = json.loads(state.read_text())
        return cls(name=name, root=run_root / name, config=data["config"], pids=data["pids"],
                   startup_seconds=data.get("startup_seconds", {}))

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"config": self.config, "pids": self.pids, "startup_seconds": self.startup_seconds}
        self.state_file.write_text(json.dumps(data, indent=2))

    def log(self, component: str) -> Path:
        return self.root / "logs" / f"{component}.log"

    def start(self, component: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> int:
        log = self.log(component)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd or self.root, env={**os.environ, **(env or {})}, start_new_session=True,
            )
        self.pids[component] = proc.pid
        self.save()
        return proc.pid

    def alive(self, component: str) -> bool:
        pid = self.pids.get(component)
        return pid is not None and _is_ours(pid, self.root)

    def running(self) -> dict[str, int]:
        return {c: p for c, p in self.pids.items() if _is_ours(p, self.root)}

    def rss_mb(self) -> dict[str, float]:
        return {c: rss_mb(p) for c, p in self.running().items()}

    def stop(self, components: list[str] | None = None, grace: float = 10.0) -> None:
        """SIGTERM the given components (all by default) together, SIGKILL what outlives `grace`."""
        targets = {c: p for c, p in self.running().items() if components is None or c in components}
        for pid in targets.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_is_ours(p, self.root) for p in targets.values()):
            time.sleep(0.2)
        for pid in targets.values():
            if _is_ours(pid, self.root):
                _signal_group(pid, signal.SIGKILL)
        for pid in targets.values():
            _reap(pid)
        for component in targets:
            self.pids.pop(component, None)
        self.save()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect our own children (started in this Python process) so they leave no zombie."""
    for _ in range(50):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not our child: init reaps it
        if done:
            return
        time.sleep(0.1)


def _is_ours(pid: int, root: Path) -> bool:
    """True when pid is alive and was started for this stack (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and str(root) in cmdline


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(argv: list[str], what: str, log: Path | None = None, timeout: float = 600, **kwargs) -> str:
    """Run a short command to completion; a failure names `what` and where its output went."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise DevstackError(f"{what}: timed out after {timeout:.0f}s") from None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as out:
            out.write(f"$ {argv[0]} ...\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DevstackError(f"{what} failed (exit {result.returncode}): {detail[0]}"
                            + (f"; see {log}" if log else ""))
    return result.stdout
