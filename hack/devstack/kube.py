"""A real Kubernetes control plane from Go-built binaries: etcd, kube-apiserver (token auth, RBAC,
service-account signing, audit log), kube-controller-manager, kube-scheduler, and kwok giving
simulated Nodes that the real scheduler places real Pods on.

Default nodes: three `metadata` nodes (ZooKeeper ensembles and KRaft controllers), three `broker`
nodes, each labelled `kafka.usecase.dev/pool=<pool>` and tainted `kafka.usecase.dev/pool=<pool>:NoSchedule`,
and two untainted `general` nodes for everything else (the operator itself). A default StorageClass
backed by the controller-manager's hostPath provisioner gives PersistentVolumeClaims real volumes.
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import jinja2

from devstack import build, nodes, paths
from devstack.errors import DevstackError
from devstack.proc import Stack, eventually, require_free_ports, require_tool, run

HOST = "127.0.0.1"
ETCD_PORT, ETCD_PEER_PORT = 23790, 23800
APISERVER_PORT, CONTROLLER_MANAGER_PORT, SCHEDULER_PORT = 16443, 10257, 10259
KWOK_PORT = 10247
SERVICE_CIDR = "10.96.0.0/16"  # never overlaps kwok (10.0.0.0/24), pods (10.244.0.0/16) or the resolver
KUBERNETES_SERVICE_IP = "10.96.0.1"
POOLS = {"metadata": 3, "broker": 3, "general": 2}
ADMIN_USER = "admin"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

_templates = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class KubeNode:
    name: str
    pool: str | None  # None: untainted general-purpose node


def default_nodes() -> list[KubeNode]:
    return [KubeNode(f"kwok-{pool}-{i}", None if pool == "general" else pool)
            for pool, count in POOLS.items() for i in range(count)]


def render_nodes(nodes: list[KubeNode]) -> str:
    return _templates.get_template("nodes.yaml.j2").render(nodes=nodes)


def example_quorum_statefulset() -> str:
    return (Path(__file__).parent / "templates" / "quorum-statefulset.yaml").read_text()


def kubeconfig(server: str, ca_file: Path, token: str, user: str = ADMIN_USER) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: devstack
  cluster:
    server: {server}
    certificate-authority: {ca_file}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: devstack
  context:
    cluster: devstack
    user: {user}
    namespace: default
current-context: devstack
"""


def binary(name: str) -> str:
    path = paths.bin_dir() / name
    if not path.exists():
        raise DevstackError(f"{name} is not built ({path} is missing): run `devstack build` (or `make setup`)")
    return str(path)


def up(run_root: Path) -> Stack:
    existing = Stack.load("kube", run_root)
    if existing and existing.running():
        if set(existing.running()) == set(COMPONENTS):
            return existing
        raise DevstackError(f"the control plane is partly running ({', '.join(existing.running())}): "
                            "run `devstack down kube` first")
    if not build.kube_ready():
        raise DevstackError("the Kubernetes components are not built: run `devstack build` (or `make setup`)")
    require_tool("openssl", "install OpenSSL (apt-get install openssl)")
    require_free_ports([(HOST, p) for p in (ETCD_PORT, ETCD_PEER_PORT, APISERVER_PORT, CONTROLLER_MANAGER_PORT,
                                            SCHEDULER_PORT, KWOK_PORT)], "kube")
    stack = Stack("kube", run_root / "kube")
    if stack.root.exists():
        shutil.rmtree(stack.root)
    (stack.root / "pki").mkdir(parents=True)
    host_ip = nodes.host_ip()
    files = _write_credentials(stack.root, host_ip)
    stack.config = {"kubeconfig": str(files["kubeconfig"]), "server": f"https://{HOST}:{APISERVER_PORT}",
                    "host_ip": host_ip,
                    "audit_log": str(stack.root / "logs" / "audit.log")}
    stack.save()
    try:
        for component, start, ready in _steps(stack, files):
            started = time.monotonic()
            start()
            eventually(ready, 120, component, log=stack.log(component), alive=lambda c=component: stack.alive(c),
                       how_it_ended=lambda c=component: stack.exit_status(c))
            stack.startup_seconds[component] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        kubectl(stack, "apply", "-f", "-", input=render_nodes(default_nodes()))
        kubectl(stack, "apply", "-f", str(Path(__file__).parent / "templates" / "storageclass.yaml"))
        kubectl(stack, "wait", "--for=condition=Ready", "node", "-l", "type=kwok", "--timeout=90s", timeout=120)
        stack.startup_seconds["nodes-ready"] = round(time.monotonic() - started, 1)
        stack.save()
    except BaseException:
        down(run_root)
        raise
    return stack



def down(run_root: Path) -> bool:
    stack = Stack.load("kube", run_root)
    if not stack or not stack.running():
        return False
    for component in reversed(COMPONENTS):  # etcd last: the others write to it on the way out
        stack.stop([component], grace=5)
    return True


def apply_external_admin_secret(stack: Stack, kafka_config: dict, namespace: str, name: str) -> None:
    """The Secret an external KafkaUseCase names in `adminSecretRef` (keys username, password),
    from a devstack Kafka cluster's admin credentials. Sent on stdin: never on a command line."""
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": name, "namespace": namespace,
                           "labels": {"app.kubernetes.io/managed-by": "devstack"}},
              "stringData": {"username": kafka_config["sasl.username"], "password": kafka_config["sasl.password"]}}
    kubectl(stack, "apply", "-f", "-", input=json.dumps(secret))


def kubectl(stack: Stack, *args: str, input: str | None = None, timeout: float = 60) -> str:
    return run([binary("kubectl"), "--kubeconfig", stack.config["kubeconfig"], *args],
               f"kubectl {' '.join(args[:2])}", input=input, timeout=timeout)


def _write_credentials(root: Path, host_ip: str) -> dict[str, Path]:
    """A CA of the stack's own; the API server's serving certificate (valid for 127.0.0.1, this
    machine's address and the `kubernetes` Service's names and IP, so pods can verify it) and the
    client certificate it shows kubelets, both signed by it."""
    pki = root / "pki"
    files = {"ca": pki / "ca.crt", "ca_key": pki / "ca.key", "cert": pki / "apiserver.crt",
             "key": pki / "apiserver.key", "kubelet_client": pki / "apiserver-kubelet-client.crt",
             "kubelet_client_key": pki / "apiserver-kubelet-client.key", "sa_key": pki / "sa.key",
             "sa_pub": pki / "sa.pub", "tokens": pki / "tokens.csv", "kubeconfig": root / "kubeconfig",
             "audit_policy": pki / "audit-policy.yaml"}
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", "/CN=devstack-ca",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", str(files["ca_key"]), "-out", str(files["ca"])], "creating the devstack CA")
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
             "localhost"]
    sans = ",".join([f"IP:{HOST}", f"IP:{host_ip}", f"IP:{KUBERNETES_SERVICE_IP}"] + [f"DNS:{n}" for n in names])
    _sign(pki, "apiserver", "/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth")
    _sign(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
          "extendedKeyUsage=clientAuth")
    run(["openssl", "genrsa", "-out", str(files["sa_key"]), "2048"], "creating the service-account signing key")
    run(["openssl", "rsa", "-in", str(files["sa_key"]), "-pubout", "-out", str(files["sa_pub"])],
        "deriving the service-account public key")
    token = secrets.token_urlsafe(32)
    files["tokens"].write_text(f"{token},{ADMIN_USER},admin-uid,system:masters\n")
    files["kubeconfig"].write_text(kubeconfig(f"https://{HOST}:{APISERVER_PORT}", files["ca"], token))
    shutil.copy(Path(__file__).parent / "templates" / "audit-policy.yaml", files["audit_policy"])
    for path in pki.iterdir():
        path.chmod(0o600)
    files["kubeconfig"].chmod(0o600)
    return files


def _sign(pki: Path, name: str, subject: str, extensions: str) -> None:
    key, csr, cert, ext = (pki / f"{name}.{suffix}" for suffix in ("key", "csr", "crt", "ext"))
    ext.write_text(extensions + "\n")
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(key), "-out", str(csr)],
        f"creating the {name} key")
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
         "-CAcreateserial", "-days", "365", "-extfile", str(ext), "-out", str(cert)], f"signing the {name} certificate")
    csr.unlink()
    ext.unlink()


def _steps(stack: Stack, files: dict[str, Path]):
    """(component, start, ready) in start-up order."""
    root, logs = stack.root, stack.root / "logs"
    kubeconfig_flags = [f"--kubeconfig={files['kubeconfig']}", f"--authentication-kubeconfig={files['kubeconfig']}",
                        f"--authorization-kubeconfig={files['kubeconfig']}", f"--bind-address={HOST}"]
    token = files["tokens"].read_text().split(",")[0]
    etcd_url = f"http://{HOST}:{ETCD_PORT}"
    yield "etcd", lambda: stack.start("etcd", [
        binary("etcd"), f"--data-dir={root / 'etcd'}", f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}", f"--listen-peer-urls=http://{HOST}:{ETCD_PEER_PORT}",
        f"--initial-advertise-peer-urls=http://{HOST}:{ETCD_PEER_PORT}",
        f"--initial-cluster=default=http://{HOST}:{ETCD_PEER_PORT}", "--unsafe-no-fsync", "--log-level=warn",
    ]), lambda: _http_ok(f"{etcd_url}/health")
    yield "kube-apiserver", lambda: stack.start("kube-apiserver", [
        # All addresses: pods reach it on this machine's address, through the `kubernetes` Service.
        binary("kube-apiserver"), f"--etcd-servers={etcd_url}", "--bind-address=0.0.0.0",
        f"--advertise-address={stack.config['host_ip']}", f"--secure-port={APISERVER_PORT}",
        f"--client-ca-file={files['ca']}", f"--kubelet-client-certificate={files['kubelet_client']}",
        f"--kubelet-client-key={files['kubelet_client_key']}", "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--tls-cert-file={files['cert']}", f"--tls-private-key-file={files['key']}", f"--token-auth-file={files['tokens']}",
        "--authorization-mode=Node,RBAC", f"--service-account-key-file={files['sa_pub']}",
        f"--service-account-signing-key-file={files['sa_key']}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--audit-policy-file={files['audit_policy']}", f"--audit-log-path={logs / 'audit.log'}",
        "--audit-log-maxsize=200", "--audit-log-maxbackup=1", "--audit-log-mode=batch",
        "--audit-log-batch-max-wait=1s", "--profiling=false", "--v=1",
    ]), lambda: _http_ok(f"https://{HOST}:{APISERVER_PORT}/readyz", token)
    yield "kube-controller-manager", lambda: stack.start("kube-controller-manager", [
        binary("kube-controller-manager"), *kubeconfig_flags, f"--secure-port={CONTROLLER_MANAGER_PORT}",
        f"--service-account-private-key-file={files['sa_key']}", f"--root-ca-file={files['ca']}",
        "--controllers=*", "--leader-elect=false", "--use-service-account-credentials=false", "--v=1",
        "--enable-hostpath-provisioner=true",  # PersistentVolumes for the default StorageClass
    ]), lambda: _http_ok(f"https://{HOST}:{CONTROLLER_MANAGER_PORT}/healthz")
    yield "kube-scheduler", lambda: stack.start("kube-scheduler", [
        binary("kube-scheduler"), *kubeconfig_flags, f"--secure-port={SCHEDULER_PORT}", "--leader-elect=false", "--v=1",
    ]), lambda: _http_ok(f"https://{HOST}:{SCHEDULER_PORT}/healthz")
    yield "kwok", lambda: stack.start("kwok", [
        binary("kwok"), f"--kubeconfig={files['kubeconfig']}", f"--config={paths.kwok_stages_file()}",
        "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--cidr=10.0.0.1/24", "--node-ip=10.0.0.1", f"--server-address={HOST}:{KWOK_PORT}",
        # The heartbeat-with-lease stage renews Node status only every ~10 minutes: without
        # node leases the node lifecycle controller sees every node NotReady after ~50 s and
        # marks every pod NotReady for good (kwok does not play the pod stage again).
        "--node-lease-duration-seconds=40",
    ]), lambda: _http_ok(f"http://{HOST}:{KWOK_PORT}/healthz")


def _http_ok(url: str, token: str | None = None) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a health probe of our own local process
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=2, context=context) as response:
        return response.status == 200
