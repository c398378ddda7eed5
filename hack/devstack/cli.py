"""The `devstack` command: build, up, down, env, status, demo."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from devstack import build, images, kafka, kube, nodes, paths
from devstack.errors import DevstackError
from devstack.proc import Stack

TARGETS = ("all", "kafka", "kube", "nodes")
STACKS = ("kube", nodes.NAME, *(f"kafka-{m}" for m in kafka.MODES), "operator")  # "operator": started by `devstack demo`


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except DevstackError as error:
        print(f"devstack: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("devstack: interrupted", file=sys.stderr)
        return 130


def cmd_build(args) -> None:
    build.build_all(kafka=args.target in ("all", "kafka"), kube=args.target in ("all", "kube"))


def cmd_up(args) -> None:
    run_root = paths.run_dir()
    if args.target in ("all", "kube"):
        build.build_all(kafka=False, kube=True)
        build.say("starting the control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) ...")
        stack = kube.up(run_root)
        build.say(f"  control plane ready: {_timings(stack)}")
    if args.target == "nodes" or (args.target == "all" and os.environ.get("DEVSTACK_REAL_NODES", "1") != "0"):
        up_nodes(run_root, args.brokers)
    if args.target in ("all", "kafka"):
        cluster = kafka.plan(args.mode, args.kafka_version, args.brokers, args.zookeepers)
        build.fetch_kafka(cluster.version)
        build.say(f"starting {cluster.name}: Kafka {cluster.version}, {cluster.brokers} broker(s) ...")
        stack = kafka.up(cluster, run_root)
        build.say(f"  {cluster.name} ready at {stack.config['bootstrap_servers']}: {_timings(stack)}")
    build.say(f"logs in {run_root}; `eval $(devstack env --mode {args.mode})` to use it")


def up_nodes(run_root: Path, brokers: int) -> None:
    kube_stack = Stack.load("kube", run_root)
    if not kube_stack or not kube_stack.running():
        raise DevstackError("real nodes need the control plane: `devstack up kube` first")
    build.build_all()  # the images need everything built
    shape = nodes.plan(brokers=brokers, metadata=brokers)
    build.say(f"starting {len(shape)} real nodes ({', '.join(n.name for n in shape)}) ...")
    stack = nodes.up(run_root, kube_stack, shape, lambda node: images.archives(node.pool))
    build.say(f"  real nodes ready: {_timings(stack)}")


def cmd_down(args) -> None:
    run_root = paths.run_dir()
    stopped = []
    operator = Stack.load("operator", run_root)
    if args.target == "all" and operator and operator.running():
        operator.stop()
        stopped.append("operator")
    if args.target in ("all", "kafka"):
        for mode in ([args.mode] if args.mode else kafka.MODES):
            if kafka.down(mode, run_root):
                stopped.append(f"kafka-{mode}")
    if args.target in ("all", "kube", "nodes") and nodes.down(run_root):
        stopped.append(nodes.NAME)
    if args.target in ("all", "kube") and kube.down(run_root):
        stopped.append("kube")
    build.say(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


def cmd_env(args) -> None:
    print(render_env(args.mode))


def render_env(mode: str | None) -> str:
    """Shell exports for the control plane and one Kafka cluster (`mode`, or the one running)."""
    run_root = paths.run_dir()
    lines = []
    kube_stack = Stack.load("kube", run_root)
    if kube_stack and kube_stack.running():
        lines.append(f"export KUBECONFIG={shlex.quote(kube_stack.config['kubeconfig'])}")
    running = [m for m in kafka.MODES if (s := Stack.load(f"kafka-{m}", run_root)) and s.running()]
    chosen = mode or (running[0] if running else None)
    if chosen in running:
        stack = Stack.load(f"kafka-{chosen}", run_root)
        lines += [f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(stack.config['bootstrap_servers'])}",
                  f"export KAFKA_ADMIN_USER={kafka.ADMIN_USER}",
                  f"export KAFKA_ADMIN_PASSWORD_FILE={shlex.quote(stack.config['admin_password_file'])}"]
    elif mode:
        raise DevstackError(f"kafka-{mode} is not running: `devstack up kafka --mode {mode}`")
    if not lines:
        raise DevstackError("nothing is running: `devstack up`")
    return "\n".join(lines)


def cmd_status(args) -> int:
    run_root = paths.run_dir()
    anything = False
    for name in STACKS:
        stack = Stack.load(name, run_root)
        if not stack or not stack.running():
            print(f"{name:16} stopped")
            continue
        anything = True
        detail = stack.config.get("shape") or stack.config.get("server")
        print(f"{name:16} running  {detail}")
        rss = stack.rss_mb()
        for component, pid in stack.pids.items():
            state = f"pid {pid:<7} {rss[component]:6.0f} MB RSS" if component in rss else "DEAD"
            took = stack.startup_seconds.get(component)
            print(f"  {component:26} {state}" + (f"   started in {took}s" if took is not None else ""))
    return 0 if anything else 3


def cmd_demo(args) -> None:
    from devstack.demo import run_demo

    run_demo()


def _timings(stack: Stack) -> str:
    return ", ".join(f"{c} {s}s" for c, s in stack.startup_seconds.items())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("build", help="fetch or build every component into the cache")
    p.add_argument("target", nargs="?", choices=TARGETS, default="all")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("up", help="start components (builds what is missing first)")
    p.add_argument("target", nargs="?", choices=TARGETS, default="all")
    p.add_argument("--mode", choices=kafka.MODES, default="kraft")
    p.add_argument("--kafka-version", help="default: 4.3.1 for kraft, 3.9.2 for zookeeper")
    p.add_argument("--brokers", type=int, default=1, help="1 or 3")
    p.add_argument("--zookeepers", type=int, help="ZooKeeper ensemble size, 1 or 3 (zookeeper mode)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop components; nothing is left running")
    p.add_argument("target", nargs="?", choices=TARGETS, default="all")
    p.add_argument("--mode", choices=kafka.MODES, help="only this Kafka cluster (default: both)")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("env", help="print shell exports: eval $(devstack env)")
    p.add_argument("--mode", choices=kafka.MODES)
    p.set_defaults(func=cmd_env)

    sub.add_parser("status", help="what runs, its memory and start-up times").set_defaults(func=cmd_status)
    sub.add_parser("demo", help="start everything and show it working").set_defaults(func=cmd_demo)
    return parser


if __name__ == "__main__":
    sys.exit(main())
