"""devstack: the real components our tests and demo run against, built and run locally.

Kafka (3.9.x with a ZooKeeper ensemble, 4.x in KRaft mode) from Maven Central jars, and a
Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
nodes) plus kubectl and helm built from Go modules. Everything is cached outside the repository
and runs as background processes with logs in a run directory.
"""

from devstack.errors import DevstackError

__all__ = ["DevstackError"]
