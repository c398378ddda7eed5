"""The project's images, built offline from the repository's Dockerfiles.

No registry is reachable here: the bases are made with debootstrap from Debian's mirror (what apt
uses) and imported into a Docker engine of the devstack's own (Debian's dockerd, its data under the
cache); the Dockerfiles then build as users build them in CI, from a context that holds what they
would fetch (Kafka's jars from Maven Central, Python wheels from PyPI), sent as a tar stream so
nothing is written into the repository. Each image is saved as an archive in the cache, which the
real nodes' containerds import. An image is rebuilt when its inputs change (Docker's layer cache
makes that quick), never otherwise.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from devstack import build, paths, versions
from devstack.errors import DevstackError
from devstack.proc import Stack, eventually, require_tool, run

REPO = paths.HACK_DIR.parent
REGISTRY = "localhost/kafka-usecase-operator"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASES = {
    # Java for Kafka and ZooKeeper; Python, its headers and a C compiler for the operator's build stage.
    "base-java": ("openjdk-17-jre-headless",),
    "base-python": ("python3", "python3-venv", "python3-dev", "gcc", "libc6-dev"),
}


@dataclass(frozen=True)
class Image:
    name: str  # repository under REGISTRY
    tag: str
    dockerfile: str  # path in the repository
    build_args: tuple[tuple[str, str], ...]

    @property
    def ref(self) -> str:
        return f"{REGISTRY}/{self.name}:{self.tag}"

    @property
    def archive(self) -> Path:
        return paths.cache_dir() / "images" / f"{self.name}-{self.tag}.tar"


def kafka_image(version: str) -> Image:
    return Image("kafka", version, "images/kafka/Dockerfile",
                 (("BASE_IMAGE", f"{REGISTRY}/base-java:bookworm"), ("KAFKA_VERSION", version)))


OPERATOR = Image("kafka-usecase-operator", "dev", "Dockerfile",
                 (("PYTHON_IMAGE", f"{REGISTRY}/base-python:bookworm"), ("PIP_NO_INDEX", "1")))
PAUSE = Image("pause", versions.KUBERNETES, "images/pause/Dockerfile", ())


def all_images() -> list[Image]:
    return [PAUSE, *(kafka_image(v) for v in versions.KAFKA_VERSIONS), OPERATOR]


def archives(pool: str | None) -> list[Path]:
    """What a node of `pool` runs: Kafka on the broker and metadata pools, the operator and the
    client pods (which use the operator's image: Python and confluent-kafka) elsewhere."""
    wanted = [PAUSE, *(kafka_image(v) for v in versions.KAFKA_VERSIONS)] if pool else [PAUSE, OPERATOR]
    return [image.archive for image in wanted]


def build_images(progress: str = "") -> None:
    stale = [image for image in all_images()
             if not (image.archive.exists() and _stamp(image).exists() and _stamp(image).read_text() == _inputs(image))]
    if not stale:
        return
    require_tool("dockerd", "install Debian's docker.io (apt-get install docker.io)")
    require_tool("debootstrap", "install debootstrap (apt-get install debootstrap)")
    engine = _start_engine()
    try:
        for base, packages in BASES.items():
            _make_base(engine, base, packages, progress)
        for image in stale:
            started = time.monotonic()
            build.say(f"{progress} building image {image.ref} ...")
            _docker(engine, "build", "--network=none", "-t", image.ref, "-f", "Dockerfile",
                    *[f"--build-arg={k}={v}" for k, v in image.build_args], "-",
                    input=_context(image), what=f"docker build {image.ref}", timeout=1800)
            image.archive.parent.mkdir(parents=True, exist_ok=True)
            partial = image.archive.with_suffix(".partial")
            _docker(engine, "save", "-o", str(partial), image.ref, what=f"docker save {image.ref}")
            partial.rename(image.archive)
            _stamp(image).write_text(_inputs(image))
            build.say(f"  done in {time.monotonic() - started:.0f}s ({image.archive.stat().st_size >> 20} MB)")
    finally:
        engine.stop(grace=10)


# --- build contexts ----------------------------------------------------------------------------------

def _context(image: Image) -> bytes:
    """The tar stream docker build reads as its context: the repository's files the Dockerfile needs
    and what an online build would have fetched."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:  # docker reads no PAX
        if image.name in ("kafka", "pause"):  # the context is the Dockerfile's folder
            for child in sorted((REPO / image.dockerfile).parent.iterdir()):
                if child.name != "libs":
                    tar.add(child, child.name, filter=_no_pycache)
            if image.name == "kafka":
                tar.add(paths.kafka_libs(image.tag), "libs")
            else:
                tar.add(paths.bin_dir() / "pause", "pause")
        else:
            for path in ("Dockerfile", "README.md", "pyproject.toml", "operator", "clients/python", "images/wheels"):
                tar.add(REPO / path, path, filter=_no_pycache)
            for wheel in _wheels():
                tar.add(wheel, f"images/wheels/{wheel.name}")
    return buffer.getvalue()


def _no_pycache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name or info.name.endswith((".pyc", ".so", ".egg-info")) else info


def _wheels() -> list[Path]:
    """The operator's and the clients' dependencies, as PyPI serves them, downloaded on this machine
    (same Debian release and Python minor version as the image's base)."""
    target = paths.cache_dir() / "wheels"
    requirements = ["setuptools>=77", *_dependencies()]
    stamp = target / ".requirements"
    if not (stamp.exists() and stamp.read_text() == "\n".join(requirements)):
        target.mkdir(parents=True, exist_ok=True)
        pip = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "pip"
        run([str(pip if pip.exists() else "pip"), "download", "--quiet", "--dest", str(target), *requirements],
            "downloading the operator image's Python dependencies", timeout=900)
        stamp.write_text("\n".join(requirements))
    return sorted(target.glob("*.whl")) + sorted(target.glob("*.tar.gz"))


def _dependencies() -> list[str]:
    operator = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    clients = tomllib.loads((REPO / "clients/python/pyproject.toml").read_text())["project"]
    return [*operator["dependencies"], *clients["dependencies"],
            *clients.get("optional-dependencies", {}).get("forwarder", [])]


def _inputs(image: Image) -> str:
    """A digest of everything the image is built from: a change rebuilds it."""
    digest = hashlib.sha256(repr(image).encode())
    roots = {"kafka": ["images/kafka"], "pause": ["images/pause"]}.get(
        image.name, ["Dockerfile", "pyproject.toml", "operator", "clients/python"])
    for root in roots:
        for path in sorted((REPO / root).rglob("*")) if (REPO / root).is_dir() else [REPO / root]:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".so"):
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _stamp(image: Image) -> Path:
    return image.archive.with_suffix(".inputs")


# --- the engine and the bases --------------------------------------------------------------------------

def _start_engine() -> Stack:
    """Debian's dockerd with its data in the cache (the layer cache survives), no iptables rules, no
    bridge: builds run with --network=none."""
    leftover = Stack.load("docker", paths.run_dir())
    if leftover:
        leftover.stop(grace=5)
    stack = Stack("docker", paths.run_dir() / "docker")
    socket_path = stack.root / "docker.sock"
    stack.config = {"host": f"unix://{socket_path}"}
    stack.start("dockerd", [
        "dockerd", f"--data-root={paths.cache_dir() / 'docker'}", f"--exec-root={stack.root / 'exec'}",
        f"--host={stack.config['host']}", f"--pidfile={stack.root / 'dockerd.pid'}", "--iptables=false",
        "--ip-forward=false", "--ip-masq=false", "--bridge=none", "--storage-driver=overlay2",
    ])
    eventually(lambda: _docker(stack, "version", what="docker version", timeout=10) is not None, 60, "dockerd",
               log=stack.log("dockerd"), alive=lambda: stack.alive("dockerd"))
    return stack


def _docker_client() -> str:
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"  # the engine's own, not a newer one on PATH


def _docker(engine: Stack, *args: str, what: str, input: bytes | None = None, timeout: float = 600) -> str:
    result = subprocess.run([_docker_client(), "-H", engine.config["host"], *args], input=input, capture_output=True,
                            timeout=timeout, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()[-3:]
        raise DevstackError(f"{what} failed (exit {result.returncode}): {' | '.join(tail)}")
    return result.stdout.decode(errors="replace")


def _make_base(engine: Stack, name: str, packages: tuple[str, ...], progress: str) -> None:
    ref = f"{REGISTRY}/{name}:bookworm"
    if _docker(engine, "images", "-q", ref, what="docker images").strip():
        return
    root = paths.cache_dir() / "debootstrap" / name
    subprocess.run(["rm", "-rf", str(root)], check=True)
    root.mkdir(parents=True)
    started = time.monotonic()
    build.say(f"{progress} debootstrap bookworm + {', '.join(packages)} for {ref} ...")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", "bookworm", str(root), DEBIAN_MIRROR],
        f"debootstrap of {name}", log=paths.cache_dir() / "build.log", timeout=1800)
    run(["rm", "-rf", *(str(p) for p in (root / "var/cache/apt/archives").glob("*.deb"))], "cleaning apt's cache")
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run([_docker_client(), "-H", engine.config["host"], "import", "-", ref], stdin=tar.stdout,
                              capture_output=True, timeout=600)
    tar.wait()
    if imported.returncode != 0 or tar.returncode != 0:
        raise DevstackError(f"docker import of {ref} failed: {imported.stderr.decode(errors='replace').strip()}")
    subprocess.run(["rm", "-rf", str(root)], check=True)
    build.say(f"  done in {time.monotonic() - started:.0f}s")
