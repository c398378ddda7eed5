"""Config files for the pods: server.properties (brokers, KRaft controllers), zoo.cfg, log4j."""

from __future__ import annotations

from pathlib import Path

import jinja2

from kafka_usecase_operator.render.model import ClusterModel

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)

# Filled in by the container at start-up (see render/cluster.py: the start scripts).
PLACEHOLDERS = ("@NODE_ID@", "@POD_HOST@", "@ADMIN_PASSWORD@", "@CONTROLLER_PASSWORD@")


def broker_properties(cluster: ClusterModel) -> str:
    return _templates.get_template("server.properties.j2").render(c=cluster, role="broker")


def controller_properties(cluster: ClusterModel) -> str:
    return _templates.get_template("server.properties.j2").render(c=cluster, role="controller")


def zoo_cfg(cluster: ClusterModel) -> str:
    return _templates.get_template("zoo.cfg.j2").render(c=cluster)


STATE_FILE = "/run/kafka/server-state.log"  # readiness reads it: see the log4j templates


def log4j_properties() -> str:
    return _templates.get_template("log4j.properties.j2").render(state_file=STATE_FILE)


def log4j2_properties() -> str:
    return _templates.get_template("log4j2.properties.j2").render(state_file=STATE_FILE)


def kafka_start_script(cluster: ClusterModel, role: str, node_id_offset: int, headless: str, config_file: str,
                       log4j1: bool) -> str:
    return _templates.get_template("start-kafka.sh.j2").render(
        c=cluster, role=role, node_id_offset=node_id_offset, headless=headless, config_file=config_file,
        log4j1=log4j1)


def zookeeper_start_script(cluster: ClusterModel) -> str:
    return _templates.get_template("start-zookeeper.sh.j2").render(c=cluster)


def fill_placeholders(text: str, node_id: int, pod_host: str, admin_password: str,
                      controller_password: str = "") -> str:
    """What a pod's start script does to its ConfigMap's template (in bash), in Python: used to
    show that the rendered configuration boots."""
    values = {"@NODE_ID@": str(node_id), "@POD_HOST@": pod_host, "@ADMIN_PASSWORD@": admin_password,
              "@CONTROLLER_PASSWORD@": controller_password}
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text
