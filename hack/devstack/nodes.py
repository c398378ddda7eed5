"""Real nodes: kubelets that run real containers, beside the control plane's kwok nodes.

Each node has its own containerd (root, state, socket: a kubelet removes pod sandboxes it does not
know), its own cgroup root, ports and directories, and its own bridge with a pod subnet of its own.
Every node shares this machine's network namespace, so one kube-proxy serves them all, one
CoreDNS (the cluster domain only; it forwards nowhere) answers their pods, and one kube-router
(its NetworkPolicy controller only) enforces NetworkPolicies for all of them: it filters the pods
whose host IP is its node's, and every real node has this machine's address.

Real nodes are labelled with their pool like the kwok nodes, and all of them carry the taint
`devstack.kafka.usecase.dev/real-node=true:NoSchedule`: what runs on them tolerates it on purpose
(the real-pod e2e tests, `devstack demo`), while every kwok-based test keeps landing on kwok nodes.

`down` leaves nothing: processes and container shims, mounts, network namespaces, bridges, cgroups,
kube-proxy's and kube-router's iptables rules and ipsets, and the sysctls that kubelet and pod
routing change.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from devstack import build, paths
from devstack.errors import DevstackError
from devstack.proc import Stack, descendants, eventually, require_free_ports, require_tool, run

NAME = "nodes"
REAL_NODE_TAINT = "devstack.kafka.usecase.dev/real-node"
POOL_LABEL = "kafka.usecase.dev/pool"
POD_CIDR = "10.244.0.0/16"  # node i gets 10.244.i.0/24
SERVICE_CIDR = "10.96.0.0/16"  # the API server's --service-cluster-ip-range (kube.SERVICE_CIDR)
CLUSTER_DOMAIN = "cluster.local"
KUBELET_PORT, KUBELET_HEALTHZ_PORT = 11250, 11350  # + node index
DNS_HEALTH_PORT, DNS_READY_PORT = 18053, 18181
PROXY_HEALTHZ_PORT, PROXY_METRICS_PORT = 10256, 10249
POLICY_HEALTH_PORT = 20244  # kube-router's, on every address
# kubelet changes these at start-up (and pods need forwarding): restored on `down`.
SYSCTLS = ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "net/ipv4/ip_forward")
CGROUP_ROOT = "/sys/fs/cgroup"
SOCKET_DIR = Path("/run/kuo-devstack")
STORAGE_CLASS = "devstack-local"
VOLUMES_PER_NODE, VOLUME_SIZE = 4, "2Gi"


@dataclass(frozen=True)
class RealNode:
    name: str
    pool: str | None  # None: a general node (the operator, clients)
    index: int

    @property
    def subnet(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def bridge(self) -> str:
        return f"kuo-br{self.index}"

    @property
    def cgroup(self) -> str:
        return f"kuo-{self.name}"

    @property
    def socket(self) -> Path:
        """containerd's socket: short, since its ttrpc socket beside it must stay under 104 bytes."""
        return SOCKET_DIR / f"node{self.index}.sock"


def plan(brokers: int = 1, metadata: int = 1, general: int = 1) -> list[RealNode]:
    """One broker per node and the quorum on nodes of its own; a general node for the rest."""
    pools = [("broker", brokers), ("metadata", metadata), (None, general)]
    nodes = []
    for pool, count in pools:
        for i in range(count):
            nodes.append(RealNode(f"real-{pool or 'general'}-{i}", pool, len(nodes)))
    return nodes


def host_ip() -> str:
    """This machine's own non-loopback address: kubelets need it as --node-ip, pods reach the
    API server and cluster DNS on it. Read from the route to the resolver (nothing is sent)."""
    resolver = next((line.split()[1] for line in Path("/etc/resolv.conf").read_text().splitlines()
                     if line.startswith("nameserver")), "192.0.2.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((resolver, 53))
        except OSError as error:
            raise DevstackError(f"no route from this machine to {resolver}: real nodes need a non-loopback "
                                f"address ({error})") from None
        address = sock.getsockname()[0]
    if address.startswith("127."):
        raise DevstackError("this machine has no non-loopback IPv4 address: real nodes need one (--node-ip)")
    return address


# --- configuration, as pure functions --------------------------------------------------------------

def containerd_config(node: RealNode, root: Path, pause_image: str) -> str:
    return f"""version = 2
root = "{root / 'containerd/root'}"
state = "{root / 'containerd/state'}"
[grpc]
  address = "{node.socket}"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root / 'containerd/opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # A negative oom_score_adj cannot be written here (no CAP_SYS_RESOURCE): runc fails every sandbox.
  restrict_oom_score_adj = true
  # Each node's network namespaces under its own state, so `down` finds and removes them.
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root / 'cni'}"
"""


def cni_config(node: RealNode, root: Path, api_host: str) -> dict:
    """A bridge of the node's own; routes to pods, Services and this machine only: no default
    route and no masquerade, so pod traffic never leaves the machine."""
    routes = [{"dst": POD_CIDR}, {"dst": SERVICE_CIDR}, {"dst": f"{api_host}/32"}]
    return {"cniVersion": "0.4.0", "name": f"devstack-{node.name}", "plugins": [
        {"type": "bridge", "bridge": node.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": node.subnet}]], "routes": routes,
                  "dataDir": str(root / "cni-ipam")}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]}


def kubelet_config(node: RealNode, root: Path, api_host: str, client_ca: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{node.cgroup}", "failCgroupV1": False,
        "oomScoreAdj": 0,  # negative values cannot be written here
        "makeIPTablesUtilChains": False,
        "address": api_host, "port": KUBELET_PORT + node.index, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": KUBELET_HEALTHZ_PORT + node.index,
        "clusterDNS": [api_host], "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods never inherit this machine's resolver: cluster DNS only
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(client_ca)}},
        "authorization": {"mode": "Webhook"},
        # Every node reports the whole machine: evict only when it is really short.
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False, "failSwapOn": False,
        "staticPodPath": "", "maxPods": 30,
        # Its own, not /var/log/pods: a kubelet removes the log folders of pods it does not know,
        # so with a shared folder one node deleted another's pods' logs.
        "podLogsDir": str(root / "pod-logs"),
        "registerWithTaints": [t for t in _taints(node)],
        "shutdownGracePeriod": "0s",
    }


def _taints(node: RealNode) -> list[dict]:
    taints = [{"key": REAL_NODE_TAINT, "value": "true", "effect": "NoSchedule"}]
    if node.pool:
        taints.append({"key": POOL_LABEL, "value": node.pool, "effect": "NoSchedule"})
    return taints


def node_labels(node: RealNode) -> dict[str, str]:
    labels = {REAL_NODE_TAINT: "true", "type": "real"}
    if node.pool:
        labels[POOL_LABEL] = node.pool
    return labels


def corefile(api_host: str, kubeconfig: Path) -> str:
    return f"""{CLUSTER_DOMAIN}:53 {{
    bind {api_host}
    ready 127.0.0.1:{DNS_READY_PORT}
    health 127.0.0.1:{DNS_HEALTH_PORT}
    errors
    cache 5
    kubernetes {CLUSTER_DOMAIN} {{
        kubeconfig {kubeconfig} devstack
        pods insecure
    }}
}}
"""


def local_volumes(node: RealNode, root: Path) -> list[dict]:
    """The node's local PersistentVolumes: each a real ext4 file system (its root holds lost+found,
    as a cloud disk's does), which honours fsGroup, unlike the hostPath provisioner."""
    return [{"apiVersion": "v1", "kind": "PersistentVolume",
             "metadata": {"name": f"{node.name}-{i}", "labels": {"app.kubernetes.io/managed-by": "devstack"}},
             "spec": {"capacity": {"storage": VOLUME_SIZE}, "accessModes": ["ReadWriteOnce"],
                      "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STORAGE_CLASS,
                      "local": {"path": str(root / "volumes" / str(i))},
                      "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                          {"key": "kubernetes.io/hostname", "operator": "In", "values": [node.name]}]}]}}}}
            for i in range(VOLUMES_PER_NODE)]


STORAGE_CLASS_MANIFEST = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": STORAGE_CLASS, "labels": {"app.kubernetes.io/managed-by": "devstack"}},
    "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer",
    "reclaimPolicy": "Retain"}


def placement(pool: str | None) -> dict:
    """nodeSelector and tolerations that put a pod on a real node of `pool` (None: general)."""
    selector = {REAL_NODE_TAINT: "true"}
    tolerations = [{"key": REAL_NODE_TAINT, "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    if pool:
        selector[POOL_LABEL] = pool
        tolerations.append({"key": POOL_LABEL, "operator": "Equal", "value": pool, "effect": "NoSchedule"})
    else:
        selector["type"] = "real"
        # general nodes carry no pool label: keep pods off the pools' nodes
    return {"nodeSelector": selector, "tolerations": tolerations}


# --- lifecycle -----------------------------------------------------------------------------------

def require_host_support() -> None:
    """One line naming what is missing, before anything starts."""
    for tool, package in (("containerd", "containerd"), ("runc", "runc"), ("iptables", "iptables"),
                          ("ip", "iproute2"), ("conntrack", "conntrack"), ("ipset", "ipset")):
        require_tool(tool, f"real nodes need {tool}: apt-get install {package}")
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        if not Path(f"/usr/lib/cni/{plugin}").exists():
            raise DevstackError(f"CNI plugin /usr/lib/cni/{plugin} is missing: apt-get install containernetworking-plugins")
    if os.geteuid() != 0:
        raise DevstackError("real nodes need root (containers, cgroups, bridges and iptables)")
    if not Path(CGROUP_ROOT, "memory").is_dir() and not Path(CGROUP_ROOT, "cgroup.controllers").exists():
        raise DevstackError(f"no cgroup hierarchy under {CGROUP_ROOT}: real nodes need cgroups")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        raise DevstackError("the kernel's br_netfilter is not loaded: Services between pods of one node need it "
                            "(modprobe br_netfilter)")


def up(run_root: Path, kube_stack: Stack, nodes: list[RealNode], images: Callable[[RealNode], list[Path]]) -> Stack:
    """`images(node)`: the image archives that node's runtime gets."""
    existing = Stack.load(NAME, run_root)
    if existing and serving(existing):
        return existing
    require_host_support()
    for binary in ("kubelet", "kube-proxy", "coredns", "kube-router"):
        if not (paths.bin_dir() / binary).exists():
            raise DevstackError(f"{binary} is not built: run `devstack build` (or `make setup`)")
    api_host = kube_stack.config["host_ip"]
    local_ports = (DNS_HEALTH_PORT, DNS_READY_PORT, PROXY_HEALTHZ_PORT, POLICY_HEALTH_PORT)
    require_free_ports([("127.0.0.1", p) for p in local_ports] + [(api_host, 53)]
                       + [(api_host, KUBELET_PORT + n.index) for n in nodes], NAME)
    if existing:  # killed without `down`: its mounts, cgroups, bridges and Node objects are still there
        down(run_root)
    stack = Stack(NAME, run_root / NAME)
    _clean_leftovers(stack.root)  # mounts of a stack whose state file is gone
    shutil.rmtree(stack.root, ignore_errors=True)
    stack.root.mkdir(parents=True)
    stack.config = {"nodes": [n.__dict__ for n in nodes], "host_ip": api_host,
                    "shape": f"{len(nodes)} real nodes: {', '.join(n.name for n in nodes)}",
                    "sysctls": {key: _read_sysctl(key) for key in SYSCTLS}, "kube_root": str(kube_stack.root)}
    stack.save()
    kubeconfig = Path(kube_stack.config["kubeconfig"])
    pki = Path(kube_stack.root) / "pki"
    try:
        _write_sysctl("net/ipv4/ip_forward", "1")  # pod to pod across bridges
        started = time.monotonic()
        for node in nodes:
            _start_containerd(stack, node)
        for node in nodes:
            eventually(lambda n=node: _containerd_ready(stack, n), 60, f"containerd of {node.name}",
                       log=stack.log(f"containerd-{node.name}"), alive=lambda n=node: stack.alive(f"containerd-{n.name}"))
        import_images(stack, nodes, images)
        stack.startup_seconds["containerd+images"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        volumes = [STORAGE_CLASS_MANIFEST]
        for node in nodes:
            _make_file_systems(stack.root / node.name)
            volumes += local_volumes(node, stack.root / node.name)
        _kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": volumes}))
        for node in nodes:
            _start_kubelet(stack, node, api_host, kubeconfig, pki / "ca.crt")
        _start_kube_proxy(stack, nodes[-1], kubeconfig)
        _start_coredns(stack, api_host, kubeconfig)
        eventually(lambda: _http_ok(f"http://127.0.0.1:{DNS_READY_PORT}/ready"), 60, "CoreDNS",
                   log=stack.log("coredns"), alive=lambda: stack.alive("coredns"))
        eventually(lambda: _nodes_ready(kubeconfig, nodes), 120, "real nodes Ready",
                   log=stack.log(f"kubelet-{nodes[0].name}"))
        _start_policy_engine(stack, nodes[-1], kubeconfig)  # it reads its Node object at start-up
        eventually(lambda: _http_ok(f"http://127.0.0.1:{POLICY_HEALTH_PORT}/healthz"), 60, "kube-router",
                   log=stack.log("kube-router"), alive=lambda: stack.alive("kube-router"))
        stack.startup_seconds["nodes-ready"] = round(time.monotonic() - started, 1)
        stack.config["ready"] = True
        stack.save()
    except BaseException:
        down(run_root)
        raise
    return stack


def ensure(run_root: Path, kube_stack: Stack, nodes: list[RealNode],
           images: Callable[[RealNode], list[Path]]) -> tuple[Stack, bool]:
    """Real nodes of this shape, and whether they were started now: the running ones, given the
    images rebuilt since and their released volumes back, or new ones."""
    existing = Stack.load(NAME, run_root)
    if existing and serving(existing):
        if [RealNode(**n) for n in existing.config["nodes"]] != nodes:
            raise DevstackError(f"real nodes of another shape run ({existing.config['shape']}): "
                                "`devstack down nodes` first")
        import_images(existing, nodes, images)
        recycle_released_volumes(existing)  # their claims' use cases are gone
        return existing, False
    return up(run_root, kube_stack, nodes, images), True


def serving(stack: Stack) -> bool:
    """Every process of a stack that came all the way up still runs (one killed half-way did not)."""
    return bool(stack.config.get("ready") and stack.pids) and set(stack.running()) == set(stack.pids)


def down(run_root: Path) -> bool:
    stack = Stack.load(NAME, run_root)
    if not stack:
        return False
    was_running = bool(stack.running())
    nodes = [RealNode(**n) for n in stack.config.get("nodes", [])]
    kubelets = [c for c in stack.pids if c.startswith("kubelet-")]
    stack.stop(kubelets + ["coredns"], grace=5)
    kubeconfig = Path(stack.config.get("kube_root", "/nonexistent")) / "kubeconfig"
    if kubeconfig.exists():  # the control plane may be gone already: then so are the objects
        kubectl = [str(paths.bin_dir() / "kubectl"), "--kubeconfig", str(kubeconfig), "delete", "--wait=false",
                   "--ignore-not-found"]
        subprocess.run([*kubectl, "pv", "-l", "app.kubernetes.io/managed-by=devstack"], capture_output=True, timeout=60)
        subprocess.run([*kubectl, "node", *[n.name for n in nodes]], capture_output=True, timeout=60)
    for node in nodes:
        _kill_containers(stack, node)
    stack.stop(None, grace=5)  # containerds, kube-proxy, kube-router
    if (paths.bin_dir() / "kube-proxy").exists():
        subprocess.run([str(paths.bin_dir() / "kube-proxy"), "--cleanup"], capture_output=True, timeout=60)
    _remove_policy_rules()
    _clean_leftovers(stack.root, nodes)
    for key, value in stack.config.get("sysctls", {}).items():
        _write_sysctl(key, value)
    stack.pids.clear()
    stack.save()
    return was_running


def _start_containerd(stack: Stack, node: RealNode) -> None:
    root = stack.root / node.name
    SOCKET_DIR.mkdir(mode=0o700, exist_ok=True)
    (root / "cni").mkdir(parents=True, exist_ok=True)
    (root / "cni" / "10-devstack.conflist").write_text(
        json.dumps(cni_config(node, root, stack.config["host_ip"]), indent=2))
    config = root / "containerd.toml"
    config.write_text(containerd_config(node, root, build.PAUSE_IMAGE))
    stack.start(f"containerd-{node.name}", ["containerd", "--config", str(config), "--log-level", "warn"])


def _containerd_ready(stack: Stack, node: RealNode) -> bool:
    sock = node.socket
    return sock.exists() and subprocess.run(["ctr", "--address", str(sock), "version"], capture_output=True,
                                            timeout=10).returncode == 0


def import_images(stack: Stack, nodes: list[RealNode], images: Callable[[RealNode], list[Path]]) -> None:
    """Import into each node's containerd the image archives it has not got as they are now: all of
    them on a new node, the rebuilt ones on nodes kept running (the tags stay, the content changed)."""
    imported = stack.config.setdefault("imported", {})  # "<node> <archive>" -> the archive's mtime

    def refresh(node: RealNode) -> None:
        for archive in images(node):
            key, mtime = f"{node.name} {archive}", archive.stat().st_mtime
            if imported.get(key) != mtime:
                _import_image(stack, node, archive)
                imported[key] = mtime

    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:  # one containerd each: in parallel
        list(pool.map(refresh, nodes))
    stack.save()


def recycle_released_volumes(stack: Stack) -> None:
    """Wipe the local volumes whose claims are gone (Retain keeps them Released, and a node has only
    VOLUMES_PER_NODE) and make them Available again: for a test session on nodes kept running."""
    kubeconfig = Path(stack.config["kube_root"]) / "kubeconfig"
    volumes = json.loads(_kubectl(kubeconfig, "get", "pv", "-l", "app.kubernetes.io/managed-by=devstack", "-o", "json"))
    for pv in volumes["items"]:
        if (pv.get("status") or {}).get("phase") != "Released":
            continue
        for entry in Path(pv["spec"]["local"]["path"]).iterdir():
            if entry.name == "lost+found":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        _kubectl(kubeconfig, "patch", "pv", pv["metadata"]["name"], "--type=json",
                 "-p", '[{"op": "remove", "path": "/spec/claimRef"}]')


def _import_image(stack: Stack, node: RealNode, archive: Path) -> None:
    sock = node.socket
    run(["ctr", "--address", str(sock), "-n", "k8s.io", "images", "import", "--no-unpack", str(archive)],
        f"importing {archive.name} into {node.name}", timeout=600)


def _start_kubelet(stack: Stack, node: RealNode, api_host: str, kubeconfig: Path, client_ca: Path) -> None:
    root = stack.root / node.name
    _make_cgroup(node)
    config = root / "kubelet.yaml"
    config.write_text(json.dumps(kubelet_config(node, root, api_host, client_ca), indent=2))
    labels = ",".join(f"{k}={v}" for k, v in node_labels(node).items())
    stack.start(f"kubelet-{node.name}", [
        str(paths.bin_dir() / "kubelet"), f"--config={config}", f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node.name}", f"--node-ip={api_host}", f"--root-dir={root / 'kubelet'}",
        f"--cert-dir={root / 'kubelet-pki'}", f"--node-labels={labels}", "--v=1",
    ])


def _make_file_systems(root: Path) -> None:
    for i in range(VOLUMES_PER_NODE):
        image, mount = root / "volumes" / f"{i}.ext4", root / "volumes" / str(i)
        mount.mkdir(parents=True)
        run(["truncate", "-s", VOLUME_SIZE.replace("Gi", "G"), str(image)], "creating a volume file")
        run(["mkfs.ext4", "-q", "-F", str(image)], f"mkfs.ext4 {image}")
        # -o loop: the loop device is freed when the file system is unmounted (autoclear)
        run(["mount", "-o", "loop", str(image), str(mount)], f"mounting {image}: real nodes need loop devices")


def _kubectl(kubeconfig: Path, *args: str, input: str | None = None) -> str:
    return run([str(paths.bin_dir() / "kubectl"), "--kubeconfig", str(kubeconfig), *args], f"kubectl {args[0]}",
               input=input, timeout=60)


def _start_kube_proxy(stack: Stack, node: RealNode, kubeconfig: Path) -> None:
    stack.start("kube-proxy", [
        str(paths.bin_dir() / "kube-proxy"), f"--kubeconfig={kubeconfig}", "--proxy-mode=iptables",
        f"--hostname-override={node.name}", f"--cluster-cidr={POD_CIDR}",
        f"--healthz-bind-address=127.0.0.1:{PROXY_HEALTHZ_PORT}",
        f"--metrics-bind-address=127.0.0.1:{PROXY_METRICS_PORT}",
        "--oom-score-adj=0", "--conntrack-max-per-core=0", "--v=1",
    ])


def _start_policy_engine(stack: Stack, node: RealNode, kubeconfig: Path) -> None:
    """kube-router with its firewall alone: routing and the service proxy are the bridges' and
    kube-proxy's. Pods that no NetworkPolicy selects stay open; the node's own address (kubelet's
    probes) is always let in."""
    stack.start("kube-router", [
        str(paths.bin_dir() / "kube-router"), f"--kubeconfig={kubeconfig}", f"--hostname-override={node.name}",
        "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--run-loadbalancer=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}", f"--health-port={POLICY_HEALTH_PORT}", "--metrics-port=0",
        "--iptables-sync-period=1m", "--v=1",
    ])


def _start_coredns(stack: Stack, api_host: str, kubeconfig: Path) -> None:
    config = stack.root / "Corefile"
    config.write_text(corefile(api_host, kubeconfig))
    stack.start("coredns", [str(paths.bin_dir() / "coredns"), "-conf", str(config)])


def _nodes_ready(kubeconfig: Path, nodes: list[RealNode]) -> bool:
    out = _kubectl(kubeconfig, "get", "nodes", "-o", "json")
    ready = {item["metadata"]["name"] for item in json.loads(out)["items"]
             if any(c["type"] == "Ready" and c["status"] == "True" for c in item["status"].get("conditions", []))}
    return all(n.name in ready for n in nodes)


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


# --- cleanup ---------------------------------------------------------------------------------------

def _hierarchies() -> list[Path]:
    """The v1 controller hierarchies (cpu and cpuacct are often one, linked twice)."""
    seen, found = set(), []
    for entry in sorted(Path(CGROUP_ROOT).iterdir()):
        real = entry.resolve()
        if real.is_dir() and real not in seen and entry.name != "unified":
            seen.add(real)
            found.append(real)
    return found


def _make_cgroup(node: RealNode) -> None:
    """kubelet's cgroupRoot must exist in every hierarchy; cpuset needs its cpus and mems first."""
    for hierarchy in _hierarchies():
        path = hierarchy / node.cgroup
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            for key in ("cpuset.cpus", "cpuset.mems"):
                (path / key).write_text((hierarchy / key).read_text())


def _kill_containers(stack: Stack, node: RealNode) -> None:
    """Every process in the node's cgroups, and its containerd's shims (they outlive containerd)."""
    sock = str(node.socket)
    shims = [pid for pid in _pids() if sock in _cmdline(pid) and "containerd-shim" in _cmdline(pid)]
    victims = set(shims) | _cgroup_pids(node)
    for pid in set(victims):
        victims |= descendants(pid)
    for pid in victims:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and _state(p) != "Z" for p in victims):
        time.sleep(0.1)


def _cgroup_pids(node: RealNode) -> set[int]:
    pids = set()
    for hierarchy in _hierarchies():
        for procs in (hierarchy / node.cgroup).rglob("cgroup.procs") if (hierarchy / node.cgroup).is_dir() else []:
            try:
                pids |= {int(p) for p in procs.read_text().split()}
            except OSError:
                pass
    return pids


def _clean_leftovers(root: Path, nodes: list[RealNode] | None = None) -> None:
    """Mounts under root (pod volumes, rootfs overlays, netns files, kubelet's bind mount of its root
    dir), the nodes' cgroups and bridges, then root itself."""
    for mount in sorted(_mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    for node in nodes or []:
        for hierarchy in _hierarchies():
            top = hierarchy / node.cgroup
            if top.is_dir():
                for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                   reverse=True) + [top]:
                    try:
                        path.rmdir()
                    except OSError:
                        pass
        subprocess.run(["ip", "link", "delete", node.bridge], capture_output=True)
    for node in nodes or []:  # the logs stay, for a post-mortem
        shutil.rmtree(root / node.name, ignore_errors=True)
        for leftover in SOCKET_DIR.glob(f"{node.socket.name}*"):
            leftover.unlink()


POLICY_CHAINS = re.compile(r"^KUBE-(ROUTER|POD-FW|NWPLCY)-")


def _remove_policy_rules() -> None:
    """kube-router's filter chains, the jumps into them and its ipsets. Its own `--cleanup-config`
    (v2.1.0) leaves the chains and then crashes in the service proxy's cleanup, which needs IPVS."""
    if not shutil.which("iptables-save"):
        return  # no iptables: nothing of kube-router's can be there
    saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout.splitlines()
    chains = [line[1:].split()[0] for line in saved if line.startswith(":") and POLICY_CHAINS.match(line[1:])]
    for line in saved:  # the jumps from the built-in chains (rules inside kube-router's go with -F)
        try:
            words = shlex.split(line)
        except ValueError:  # not a rule iptables-save would quote like this: not one of kube-router's
            continue
        if words[:1] == ["-A"] and not POLICY_CHAINS.match(words[1]) and "-j" in words and \
                POLICY_CHAINS.match(words[words.index("-j") + 1]):
            subprocess.run(["iptables", "-t", "filter", "-D", *words[1:]], capture_output=True)
    for flag in ("-F", "-X"):
        for chain in chains:
            subprocess.run(["iptables", "-t", "filter", flag, chain], capture_output=True)
    sets = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True).stdout.split() \
        if shutil.which("ipset") else []
    for name in sets:
        if name.startswith(("KUBE-", "kube-router")):
            subprocess.run(["ipset", "destroy", name], capture_output=True)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix) or point == str(root):
            mounts.append(point)
    return mounts


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _read_sysctl(key: str) -> str:
    return Path("/proc/sys", key).read_text().strip()


def _write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", key).write_text(value)
