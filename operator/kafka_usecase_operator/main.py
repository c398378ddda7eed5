"""`kafka-usecase-operator run`: the operator process."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import kopf

from kafka_usecase_operator.settings import OperatorSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka-usecase-operator")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator against the current KUBECONFIG (or in-cluster)")
    run.add_argument("--namespace", "-n", action="append", default=[],
                     help="watch this namespace (repeatable); default: every namespace, or KUO_NAMESPACES")
    run.add_argument("--liveness-port", type=int, help="port of /healthz (default 8080, KUO_LIVENESS_PORT)")
    run.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)

    settings = OperatorSettings.from_env()
    settings = settings.model_copy(update={"namespaces": args.namespace or settings.namespaces,
                                           "liveness_port": args.liveness_port or settings.liveness_port})
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # kopf logs two INFO lines per handled object: at 10,000 objects, real CPU
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    importlib.import_module("kafka_usecase_operator.handlers")  # registers the handlers with kopf

    # kopf stops cleanly on SIGTERM/SIGINT: handlers finish, watches close.
    kopf.run(standalone=True, clusterwide=not settings.namespaces, namespaces=settings.namespaces,
             liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz", memo=kopf.Memo(settings=settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
