"""The Helm chart on the devstack, and the operator run as the chart would run it: as the chart's
ServiceAccount (a token from the TokenRequest API in a kubeconfig of its own, so nothing can fall
back to the admin token) with the environment the chart's Deployment gives its container."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from devstack import kube
from operator_process import OperatorProcess

ROOT = Path(__file__).parents[1]
CHART = ROOT / "charts" / "kafka-usecase-operator"
OPERATOR_NAMESPACE = "kafka-system"


def helm(kube_cluster, *args: str) -> str:
    result = subprocess.run([kube.binary("helm"), "--kubeconfig", str(kube_cluster.kubeconfig), *args],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"helm {' '.join(args[:2])} failed: {result.stderr}"
    return result.stdout


def values_args(values: dict) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def render(kube_cluster, release: str, values: dict) -> list[dict]:
    out = helm(kube_cluster, "template", release, str(CHART), "-n", OPERATOR_NAMESPACE, *values_args(values))
    return [doc for doc in yaml.safe_load_all(out) if doc]


def service_account_kubeconfig(kube_cluster, service_account: str, path: Path) -> Path:
    token = kube_cluster.kubectl("create", "token", service_account, "-n", OPERATOR_NAMESPACE,
                                 "--duration=2h").strip()
    user = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{service_account}"
    ca = kube_cluster.kubeconfig.parent / "pki" / "ca.crt"
    path.write_text(kube.kubeconfig(kube_cluster.server, ca, token, user=user))
    path.chmod(0o600)
    who = json.loads(subprocess.run(
        [kube.binary("kubectl"), "--kubeconfig", str(path), "auth", "whoami", "-o", "json"],
        capture_output=True, text=True, timeout=60, check=True).stdout)
    assert who["status"]["userInfo"]["username"] == user  # not the admin, by the API server's word
    return path


def chart_operator(kube_cluster, deployment: dict, log: Path, pod_name: str) -> OperatorProcess:
    """An operator process as `deployment` (the chart's, rendered or installed) configures it, and
    authenticated as its ServiceAccount. Only the pod name (the downward API's) is the caller's."""
    pod = deployment["spec"]["template"]["spec"]
    kubeconfig = service_account_kubeconfig(kube_cluster, pod["serviceAccountName"],
                                            log.parent / f"{pod['serviceAccountName']}.kubeconfig")
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
    return OperatorProcess(kubeconfig, [], log, env | {"KUO_POD_NAME": pod_name, "KUO_METRICS_PORT": "0"})
