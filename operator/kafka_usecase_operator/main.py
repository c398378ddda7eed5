"""`kafka-usecase-operator run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import logging
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable

import kopf
from aiohttp import web

from kafka_usecase_operator.kube.leader import LeaderElector
from kafka_usecase_operator.kube.rest import Rest, capped_session, connection_info, user_agent
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
        # kafka-python (client quotas) logs every connection attempt; its failures reach us as results
        logging.getLogger("kafka").setLevel(logging.ERROR)
    importlib.import_module("kafka_usecase_operator.handlers")  # registers the handlers with kopf
    return asyncio.run(serve(settings))


async def serve(settings: OperatorSettings) -> int:
    """kopf's operator, behind leader election when it is on. kopf stops cleanly on SIGTERM/SIGINT:
    handlers finish, watches close; then the Lease is released for a standby to take at once."""
    operator = functools.partial(
        kopf.operator, standalone=True, clusterwide=not settings.namespaces, namespaces=settings.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz", memo=kopf.Memo(settings=settings))
    if not settings.leader_election:
        await operator()
        return 0
    info = connection_info(kopf.OperatorSettings())
    rest = Rest(capped_session(info, 2, user_agent(settings.pod_name)), info.server)
    identity = f"{settings.pod_name or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    elector = LeaderElector(rest, settings.operator_namespace, settings.lease_name, identity)
    try:
        async with standby_probe(settings.liveness_port):
            if not await until_signal(elector.acquire()):
                return 0
        lost = asyncio.Event()
        holding = asyncio.create_task(elector.hold())
        holding.add_done_callback(lambda task: task.cancelled() or lost.set())
        await operator(stop_flag=lost)
        if lost.is_set():
            logging.getLogger(__name__).error("Stopped: leadership lost; exiting for a restart")
            return 1
        holding.cancel()
        await elector.release()
        return 0
    finally:
        await rest.session.close()


async def until_signal(work: Awaitable) -> bool:
    """Run `work` until it ends (True) or SIGTERM/SIGINT arrives (False)."""
    loop, task = asyncio.get_running_loop(), asyncio.ensure_future(work)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
        return True
    except asyncio.CancelledError:
        return False
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)  # kopf installs its own


@contextlib.asynccontextmanager
async def standby_probe(port: int):
    """/healthz for a standby replica, so its liveness probe passes while it waits for the Lease;
    the leader serves kopf's probe endpoint on the same port instead."""
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port, reuse_address=True).start()
    try:
        yield
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
