"""The models: single source of the CRDs and docs, and the handler-entry validator."""

from pathlib import Path

import pytest
import yaml

from api_cases import BASES, INVALID
from kafka_usecase_operator.api import KINDS, InvalidSpec, KafkaTopic, KafkaUseCase
from kafka_usecase_operator.api.schema import api_reference, crd_files

pytestmark = pytest.mark.unit
ROOT = Path(__file__).parents[2]
BY_KIND = {kind.kind: kind for kind in KINDS}


def example_documents():
    """The examples, and what the kind e2e flow applies."""
    for path in sorted((ROOT / "examples").rglob("*.yaml")) + [ROOT / "e2e" / "kind" / "flow.yaml"]:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["apiVersion"].startswith("kafka.usecase.dev/"):
                yield pytest.param(doc, id=f"{path.relative_to(ROOT)}:{doc['metadata']['name']}")


@pytest.mark.parametrize("folder", ["crds", "charts/kafka-usecase-operator/crds"])
def test_checked_in_crds_are_what_the_models_generate(folder):
    generated = crd_files()
    checked_in = {p.name: p.read_text() for p in (ROOT / folder).glob("*.yaml")}

    assert checked_in == generated, f"{folder}/ drifted from the models: run `make crds`"


def test_api_reference_is_what_the_models_generate():
    assert (ROOT / "docs" / "api.md").read_text() == api_reference(), "docs/api.md drifted: run `make crds`"


@pytest.mark.parametrize("doc", list(example_documents()))
def test_every_example_is_valid(doc):
    BY_KIND[doc["kind"]].parse(doc)


@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_case_bases_are_valid(base):
    BY_KIND[base["kind"]].parse(base)


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_spec_is_refused_naming_the_field(case):
    manifest = case.apply()

    with pytest.raises(InvalidSpec) as refused:
        BY_KIND[manifest["kind"]].parse(manifest)

    assert case.field in str(refused.value)


def test_metadata_name_that_is_no_topic_name_needs_spec_topic_name():
    body = {"metadata": {"name": "a" * 250}, "spec": {"useCase": {"name": "analytics"}}}

    with pytest.raises(InvalidSpec, match="spec.topicName: metadata.name is not a legal topic name"):
        KafkaTopic.parse(body)


def test_defaults_a_user_relies_on():
    topic = KafkaTopic.parse({"metadata": {"name": "t"}, "spec": {"useCase": {"name": "u"}}})
    use_case = KafkaUseCase.parse({"metadata": {"name": "u"}, "spec": {}})

    assert (topic.partitions, topic.deletion_policy, topic.use_case.namespace) == (1, "Retain", None)
    assert use_case.access.namespaces.from_ == "Same"
    assert use_case.metadata_quorum is None and use_case.profile == "general"


def test_setting_only_delete_claim_keeps_the_quorum_claims_default_size():
    """A claim's size cannot change in a StatefulSet: a default that moved with it would break the update."""
    spec = {"metadataQuorum": {"mode": "kraft"}, "controllers": {"storage": {"deleteClaim": True}}}
    use_case = KafkaUseCase.parse({"metadata": {"name": "u"}, "spec": spec})
    bare = KafkaUseCase.parse({"metadata": {"name": "u"}, "spec": {"metadataQuorum": {"mode": "kraft"},
                                                                   "controllers": {}}})

    assert use_case.controllers.storage.size == bare.controllers.storage.size == "5Gi"


def test_invalid_spec_is_a_permanent_error_with_its_reason():
    import kopf

    with pytest.raises(kopf.PermanentError) as refused:
        KafkaTopic.parse({"metadata": {"name": "t"}, "spec": {"useCase": {"name": "u"}, "partitions": 0}})

    assert refused.value.reason == "InvalidSpec"
