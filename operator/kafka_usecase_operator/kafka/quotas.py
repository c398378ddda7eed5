"""Client quotas (KIP-546) for the admin Protocol, on kafka-python.

confluent-kafka 2.16.1 has no DescribeClientQuotas or AlterClientQuotas (librdkafka's KIP-546 work
is unmerged). kafka-python 3.0 ships both requests, generated from Kafka's own message schemas, but
no admin method: this adapter sends them through a kafka-python admin client, SCRAM-authenticated
as the same admin principal, to any broker (a KRaft broker forwards them to the controller; a
ZooKeeper-mode broker writes them itself). It speaks only of user entities: the operator never
reads or writes a client-id or `<default>` quota. kafka-python is pinned (pyproject.toml): the
request goes through its connection manager, which is not a public interface.
"""

from __future__ import annotations

import threading
import time

import kafka.errors as errors
from kafka import KafkaAdminClient
from kafka.net.compat import KafkaNetClient
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest

from kafka_usecase_operator.kafka.plan import QuotaChange, QuotaValues

USER = "user"
MATCH_ANY_NAME = 2  # DescribeClientQuotas match_type: every user entity with a name (never `<default>`)
# kafka-python's ways of saying the cluster cannot be reached: what the executor retries (TimeoutError).
UNREACHABLE = (errors.KafkaConnectionError, errors.KafkaTimeoutError, errors.NodeNotReadyError,
               errors.RequestTimedOutError)
RECONNECT_AFTER = 30.0  # seconds a failed connection is not tried again (each try may take the timeout)


def _kafka_error(code: int, message: str | None) -> Exception:
    error = errors.for_code(code)
    return error(message) if message else error()


class KafkaPythonQuotas:
    def __init__(self, config: dict, timeout: float = 30.0):
        """`config`: the confluent-kafka settings the other adapter uses; the client connects on
        first use, so a use case without quotas never opens it."""
        self.settings = {"bootstrap_servers": config["bootstrap.servers"].split(","),
                         "security_protocol": config.get("security.protocol", "PLAINTEXT"),
                         "request_timeout_ms": int(timeout * 1000), "bootstrap_timeout_ms": int(timeout * 1000),
                         "client_id": "kafka-usecase-operator-quotas"}
        if "sasl.mechanism" in config:
            self.settings.update(sasl_mechanism=config["sasl.mechanism"], sasl_plain_username=config["sasl.username"],
                                 sasl_plain_password=config["sasl.password"])
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._failed: tuple[float, str] | None = None  # when the last connection attempt failed, and why

    def user_quotas(self, users: list[str]) -> dict[str, QuotaValues | Exception]:
        """One DescribeClientQuotas for every named user entity, whatever the number asked."""
        request = DescribeClientQuotasRequest(components=[DescribeClientQuotasRequest.ComponentData(
            entity_type=USER, match_type=MATCH_ANY_NAME, match=None)], strict=True)
        try:
            response = self.send(request)
            if response.error_code:
                raise _kafka_error(response.error_code, response.error_message)
        except Exception as error:
            return {user: error for user in users}
        found: dict[str, QuotaValues] = {}
        for entry in response.entries or ():
            names = [e.entity_name for e in entry.entity if e.entity_type == USER]
            if len(entry.entity) == 1 and names:
                found[names[0]] = {value.key: value.value for value in entry.values}
        return {user: found.get(user, {}) for user in users}

    def alter_user_quotas(self, changes: dict[str, QuotaChange]) -> dict[str, Exception | None]:
        """One AlterClientQuotas for all users; each user's keys set, or removed where None."""
        entry = AlterClientQuotasRequest.EntryData
        request = AlterClientQuotasRequest(entries=[
            entry(entity=[entry.EntityData(entity_type=USER, entity_name=user)],
                  ops=[entry.OpData(key=key, value=0.0 if value is None else float(value), remove=value is None)
                       for key, value in sorted(change.items())])
            for user, change in changes.items()], validate_only=False)
        try:
            response = self.send(request)
        except Exception as error:
            return {user: error for user in changes}
        outcomes: dict[str, Exception | None] = {}
        for result in response.entries:
            user = next(e.entity_name for e in result.entity if e.entity_type == USER)
            outcomes[user] = _kafka_error(result.error_code, result.error_message) if result.error_code else None
        return {user: outcomes.get(user, KeyError(f"no answer for user {user}")) for user in changes}

    def close(self) -> None:
        """Stops kafka-python's IO thread (it blocks while a request is in flight: not on the event loop)."""
        with self._lock:
            self._closed = True
            if self._admin is not None:
                self._admin.close()
                self._admin = None

    def admin(self) -> KafkaAdminClient:
        """The connected kafka-python admin client, for the calls it has a method for."""
        with self._lock:
            self._connect()
            return self._admin

    def send(self, request):
        """Any request kafka-python generates, through this admin connection (connected on first use)."""
        with self._lock:
            manager = self._connect()

        async def send():
            return await manager.send(request)

        try:
            return manager.run(send)
        except UNREACHABLE as error:
            raise TimeoutError(f"{type(request).__name__}: {error}") from error
        except RuntimeError as error:  # closed under us (a retired connection)
            raise TimeoutError(f"{type(request).__name__}: {error}") from error

    def _connect(self):
        """The admin client's connection manager, connected on first use. A failed attempt is not
        repeated for RECONNECT_AFTER seconds (each one may wait the whole timeout), and the client
        it half-made is stopped: kafka-python starts its IO thread before it connects."""
        if self._closed:
            raise TimeoutError("client quotas: this connection was retired")
        if self._admin is not None:
            return self._admin._manager
        if self._failed and time.monotonic() - self._failed[0] < RECONNECT_AFTER:
            raise TimeoutError(self._failed[1])
        made: list[KafkaNetClient] = []

        def client(**configs):
            made.append(KafkaNetClient(**configs))
            return made[-1]

        try:
            self._admin = KafkaAdminClient(**self.settings, kafka_client=client)
        except Exception as error:
            for half in made:
                half.close()
                half._manager._net.stop()
            refused = [failure for half in made for failure in half._manager._auth_failures.values()]
            why = f"client quotas: {refused[0]}" if refused else f"cannot reach the cluster for client quotas: {error}"
            self._failed = (time.monotonic(), why)
            if refused:
                raise errors.SaslAuthenticationFailedError(why) from error
            raise TimeoutError(why) from error
        self._failed = None
        return self._admin._manager
