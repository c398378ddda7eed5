"""The Helm chart on the devstack, and the operator run as the chart would run it: as the chart's
ServiceAccount (a token from the TokenRequest API in a kubeconfig of its own, so nothing can fall
back to the admin token) with the environment the chart's Deployment gives its container."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from devstack import kube
from operator_process import OperatorProcess

ROOT = Path(__file__).parents[1]
CHART = ROOT / "charts" / "kafka-usecase-operator"
OPERATOR_NAMESPACE = "kafka-system"


def helm(kube_cluster, *args: str, input: str | None = None) -> str:
    result = subprocess.run([kube.binary("helm"), "--kubeconfig", str(kube_cluster.kubeconfig), *args],
                            input=input, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"helm {' '.join(args[:2])} failed: {result.stderr}"
    return result.stdout


def values_args(values: dict) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def service_account_kubeconfig(kube_cluster, service_account: str, path: Path) -> Path:
    token = kube_cluster.kubectl("create", "token", service_account, "-n", OPERATOR_NAMESPACE,
                                 "--duration=2h").strip()
    user = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{service_account}"
    ca = kube_cluster.kubeconfig.parent / "pki" / "apiserver.crt"
    path.write_text(kube.kubeconfig(kube_cluster.server, ca, token, user=user))
    path.chmod(0o600)
    who = json.loads(subprocess.run(
        [kube.binary("kubectl"), "--kubeconfig", str(path), "auth", "whoami", "-o", "json"],
        capture_output=True, text=True, timeout=60, check=True).stdout)
    assert who["status"]["userInfo"]["username"] == user  # not the admin, by the API server's word
    return path


def deployment_env(kube_cluster, deployment: str) -> dict[str, str]:
    """The operator container's environment as the chart rendered it (values only; the pod name,
    from the downward API, is the test's to give)."""
    found = json.loads(kube_cluster.kubectl("get", "deployment", deployment, "-n", OPERATOR_NAMESPACE, "-o", "json"))
    container = found["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def chart_operator(kube_cluster, release: str, log: Path, pod_name: str = "operator-0",
                   extra_env: dict[str, str] | None = None) -> OperatorProcess:
    """An operator process configured by the installed release and authenticated as its ServiceAccount."""
    fullname = f"{release}-kafka-usecase-operator"
    kubeconfig = service_account_kubeconfig(kube_cluster, fullname, log.parent / f"{fullname}.kubeconfig")
    env = deployment_env(kube_cluster, fullname) | {"KUO_POD_NAME": pod_name, "KUO_METRICS_PORT": "0"}
    return OperatorProcess(kubeconfig, [], log, env | (extra_env or {}))
