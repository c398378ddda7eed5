"""Fetch or build every real component into the cache; each step is skipped when its output exists.

Kafka jars come from Maven Central through hack/kafka/pom.xml; etcd and the Kubernetes binaries
are built from the wrapper modules in hack/etcd and hack/kube; kwok and helm with `go install`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from devstack import paths, versions
from devstack.errors import DevstackError
from devstack.proc import require_tool

_tidied: set[str] = set()  # wrapper modules resolved in this process
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy")
PAUSE_IMAGE = "localhost/kafka-usecase-operator/pause:" + versions.KUBERNETES
KWOK_STAGES = ("kustomize/stage/node/fast", "kustomize/stage/node/heartbeat-with-lease", "kustomize/stage/pod/fast")


def say(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr, flush=True)


# What real nodes and offline image builds need from Debian: command -> package.
HOST_PACKAGES = {"containerd": "containerd", "runc": "runc", "/usr/lib/cni/bridge": "containernetworking-plugins",
                 "debootstrap": "debootstrap", "dockerd": "docker.io", "iptables": "iptables", "conntrack": "conntrack",
                 "mkfs.ext4": "e2fsprogs", "gcc": "gcc", "ipset": "ipset"}


def install_host_packages(progress: str = "") -> None:
    """Debian's packages for real nodes and image builds, installed with apt when missing (as root;
    otherwise the error names them)."""
    missing = sorted({package for tool, package in HOST_PACKAGES.items()
                      if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise DevstackError(f"real nodes need Debian's {', '.join(missing)}: apt-get install {' '.join(missing)}")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    _run_with_heartbeat(["apt-get", "update", "-q"], f"{progress} apt-get update", cwd=paths.cache_dir(), env_extra=env)
    _run_with_heartbeat(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                        f"{progress} apt-get install {' '.join(missing)}", cwd=paths.cache_dir(), env_extra=env)


def build_all(kafka: bool = True, kube: bool = True) -> None:
    steps = [("Debian packages", install_host_packages)] if kafka and kube else []
    if kafka:
        steps += [(f"Kafka {v} jars", lambda progress, v=v: fetch_kafka(v, progress)) for v in versions.KAFKA_VERSIONS]
    if kube:
        steps += [("etcd", build_etcd), ("kwok", build_kwok), ("helm", build_helm)]
        steps += [(name, lambda progress, name=name: build_kube(name, progress)) for name in KUBE_BINARIES]
        steps += [("coredns", build_coredns), ("kube-router", build_kube_router), ("pause", build_pause)]
    if kafka and kube:
        from devstack import images  # images need both: Kafka's jars, and pause from the kube step

        steps.append(("images", images.build_images))
    for index, (what, step) in enumerate(steps, 1):
        step(progress=f"[{index}/{len(steps)}] {what}")


def kafka_ready(version: str) -> bool:
    libs = paths.kafka_libs(version)
    return libs.is_dir() and any(libs.glob(f"kafka_2.13-{version}.jar"))


def fetch_kafka(version: str, progress: str = "") -> None:
    if kafka_ready(version):
        return
    mvn = require_tool("mvn", "install Maven and Java 17 (apt-get install maven openjdk-17-jdk-headless)")
    require_tool("java", "install Java 17 (apt-get install openjdk-17-jdk-headless)")
    libs = paths.kafka_libs(version)
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    argv = [mvn, "-B", "-q", "-f", str(paths.HACK_DIR / "kafka" / "pom.xml"),
            f"-Dkafka.version={version}", f"-Dlibs.dir={staging}", "dependency:copy-dependencies"]
    if not versions.has_zookeeper_mode(version):
        argv.append("-Dkafka.log4j2=true")
    _run_with_heartbeat(argv, f"{progress} resolving Kafka {version} from Maven Central",
                        cwd=paths.cache_dir())
    staging.rename(libs)  # only a complete download counts as cached


def build_etcd(progress: str = "") -> None:
    _go_build_in_wrapper("etcd", "go.etcd.io/etcd/server/v3", "etcd", progress)


def build_kube(binary: str, progress: str = "") -> None:
    _go_build_in_wrapper("kube", f"k8s.io/kubernetes/cmd/{binary}", binary, progress, _kube_version_flags())


def build_coredns(progress: str = "") -> None:
    """CoreDNS with the plugins cluster DNS needs (hack/coredns): the devstack's real nodes' DNS."""
    _go_build_in_wrapper("coredns", ".", "coredns", progress)


def build_kube_router(progress: str = "") -> None:
    """kube-router, for its NetworkPolicy controller alone: the real nodes' policy engine."""
    _go_install(f"github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@{versions.KUBE_ROUTER}", "kube-router",
                progress)


def build_pause(progress: str = "") -> None:
    """Kubernetes' own pause.c (from the k8s.io/kubernetes module), linked statically: every pod
    sandbox's first process, in an image of its own (images/pause)."""
    target = paths.bin_dir() / "pause"
    if target.exists():
        return
    source = Path(_go_env("GOMODCACHE")) / f"k8s.io/kubernetes@{versions.KUBERNETES}/build/pause/linux/pause.c"
    if not source.exists():
        _run_with_heartbeat([_go(), "mod", "download", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
                            f"{progress} downloading pause.c", cwd=paths.cache_dir())
    gcc = require_tool("gcc", "install a C compiler (apt-get install gcc libc6-dev)")
    _run_with_heartbeat([gcc, "-Os", "-static", "-DVERSION=" + versions.KUBERNETES, "-o", str(target), str(source)],
                        f"{progress} compiling pause", cwd=paths.cache_dir())


def _kube_version_flags() -> str:
    """What Kubernetes' own build stamps into its binaries: without it the API server reports
    v0.0.0-master, and a chart's `kubeVersion` constraint refuses to install."""
    major, minor = versions.KUBERNETES.lstrip("v").split(".")[:2]
    stamps = {"gitVersion": versions.KUBERNETES, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return "-ldflags=" + " ".join(f"-X k8s.io/component-base/version.{k}={v}" for k, v in stamps.items())


def build_kwok(progress: str = "") -> None:
    _go_install(f"sigs.k8s.io/kwok/cmd/kwok@{versions.KWOK}", "kwok", progress)
    stages = paths.kwok_stages_file()
    if stages.exists():
        return
    module_dir = Path(_go_env("GOMODCACHE")) / f"sigs.k8s.io/kwok@{versions.KWOK}"
    if not module_dir.is_dir():  # the module cache was cleaned after kwok was installed
        _run_with_heartbeat([_go(), "mod", "download", f"sigs.k8s.io/kwok@{versions.KWOK}"],
                            "downloading kwok's stage definitions", cwd=paths.cache_dir())
    documents = []
    for stage_dir in KWOK_STAGES:
        for path in sorted((module_dir / stage_dir).glob("*.yaml")):
            if path.name != "kustomization.yaml":
                documents.append(path.read_text().strip())
    if not documents:
        raise DevstackError(f"no kwok stage definitions found under {module_dir}")
    stages.parent.mkdir(parents=True, exist_ok=True)
    stages.write_text("\n---\n".join(documents) + "\n")


def build_helm(progress: str = "") -> None:
    _go_install(f"helm.sh/helm/v4/cmd/helm@{versions.HELM}", "helm", progress)


def kube_ready() -> bool:
    names = ("etcd", "kwok", "helm", "coredns", "kube-router", "pause") + KUBE_BINARIES
    return all((paths.bin_dir() / n).exists() for n in names) and paths.kwok_stages_file().exists() and \
        all(_built_with(paths.bin_dir() / n) == _kube_version_flags() for n in KUBE_BINARIES)


def _go() -> str:
    return require_tool("go", "install Go >= 1.26 (https://go.dev/doc/install) and put it on PATH")


def _go_env(name: str) -> str:
    return subprocess.run([_go(), "env", name], capture_output=True, text=True, check=True).stdout.strip()


def _go_install(package: str, binary: str, progress: str) -> None:
    target = paths.bin_dir() / binary
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _run_with_heartbeat([_go(), "install", package], f"{progress} building {package}",
                        env_extra={"GOBIN": str(target.parent)}, cwd=paths.cache_dir())


def _go_build_in_wrapper(wrapper: str, package: str, binary: str, progress: str, flags: str = "") -> None:
    """Build in a copy of hack/<wrapper> inside the cache, so the repository is never written.
    A binary built with other flags than these is built again."""
    target = paths.bin_dir() / binary
    if _built_with(target) == flags:
        return
    work = paths.cache_dir() / "build" / wrapper
    if wrapper not in _tidied:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(paths.HACK_DIR / wrapper, work)
        _run_with_heartbeat([_go(), "mod", "tidy"], f"{progress} resolving Go modules for {wrapper}", cwd=work)
        _tidied.add(wrapper)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    _run_with_heartbeat([_go(), "build", *([flags] if flags else []), "-o", str(partial), package],
                        f"{progress} building {binary}", cwd=work)
    partial.rename(target)
    _flags_file(target).write_text(flags)


def _flags_file(target: Path) -> Path:
    return target.with_name(f".{target.name}.flags")


def _built_with(target: Path) -> str | None:
    """The build flags `target` was built with ("" if unrecorded); None if it is not built."""
    if not target.exists():
        return None
    return _flags_file(target).read_text() if _flags_file(target).exists() else ""


def _run_with_heartbeat(argv: list[str], what: str, cwd: Path, env_extra: dict | None = None) -> None:
    """Run a long build step, saying every 30 s that it is still going (go build prints nothing)."""
    cwd.mkdir(parents=True, exist_ok=True)
    log = paths.cache_dir() / "build.log"
    say(f"{what} ...")
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            say(f"  ... still {what.split('] ', 1)[-1]} ({time.monotonic() - started:.0f}s)")

    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        with open(log, "a") as out:
            out.write(f"\n$ {' '.join(argv)}\n")
            out.flush()
            result = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env_extra or {})})
    finally:
        done.set()
    if result.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        raise DevstackError(f"{what.split('] ', 1)[-1]} failed (exit {result.returncode}): {tail[0]}; see {log}")
    say(f"  done in {time.monotonic() - started:.0f}s")
