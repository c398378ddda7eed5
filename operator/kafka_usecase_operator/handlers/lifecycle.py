"""Start-up wires things once: kopf settings, the settings object and the Kubernetes client."""

from __future__ import annotations

import kopf

from kafka_usecase_operator.api import GROUP
from kafka_usecase_operator.kube.client import Kube, api_client
from kafka_usecase_operator.settings import OperatorSettings


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    # Progress and diff-base live in annotations of our own prefix: the CRDs' status schemas are
    # strict, and a pruned status.kopf would make kopf re-detect creation forever.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = 30  # Events for warnings and up; handlers post the rest explicitly
    settings.watching.server_timeout = 300
    if "settings" not in memo:  # `kafka-usecase-operator run` passes them, with its command-line options
        memo.settings = OperatorSettings.from_env()
    memo.kube = Kube(api_client(), memo.settings.field_manager)
