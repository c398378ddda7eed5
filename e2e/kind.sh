#!/usr/bin/env bash
# The e2e flow on kind (needs Docker, kind, kubectl, helm): build the image, load it into kind,
# install the chart, apply a use case with a topic and users, wait for Ready, produce and consume
# with the generated credentials, upgrade the release with changed values, uninstall it.
# The same flow runs on the devstack (no Docker) as e2e/test_helm_devstack.py, inside `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${CLUSTER:-kuo-e2e}
IMAGE=kafka-usecase-operator:e2e
NS=kafka-e2e
KAFKA_IMAGE=apache/kafka:4.3.1

step() { echo "--- $*"; }
wait_ready() {  # kind name
  kubectl wait --for=condition=Ready "$1" "$2" -n "$NS" --timeout="${3:-600s}"
}

step "kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --config e2e/kind/cluster.yaml --wait 120s

step "image $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"
docker pull "$KAFKA_IMAGE" && kind load docker-image "$KAFKA_IMAGE" --name "$CLUSTER"

step "helm install"
helm install kuo charts/kafka-usecase-operator -n kafka-system --create-namespace \
  --set image.repository=kafka-usecase-operator --set image.tag=e2e --set image.pullPolicy=Never --wait --timeout 5m
kubectl -n kafka-system get lease kuo-kafka-usecase-operator -o jsonpath='{.spec.holderIdentity}{"\n"}'

step "use case, topic, users"
kubectl apply -f e2e/kind/flow.yaml
wait_ready kafkausecase e2e 900s
for obj in kafkatopic/orders kafkauser/writer kafkauser/reader; do
  wait_ready "${obj%%/*}" "${obj##*/}" 300s
done

step "produce and consume with the generated credentials"
client() {  # user, command...
  local user=$1; shift
  kubectl run "client-$user-$RANDOM" -n "$NS" --rm -i --restart=Never --image="$KAFKA_IMAGE" \
    --overrides="{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"$KAFKA_IMAGE\",\"stdin\":true,
      \"command\":[\"bash\",\"-c\",\"$*\"],
      \"volumeMounts\":[{\"name\":\"creds\",\"mountPath\":\"/creds\"}]}],
      \"volumes\":[{\"name\":\"creds\",\"secret\":{\"secretName\":\"$user\"}}]}}"
}
BOOTSTRAP=$(kubectl get kafkausecase e2e -n "$NS" -o jsonpath='{.status.bootstrapServers}')
echo "hello from e2e" | client writer "/opt/kafka/bin/kafka-console-producer.sh --bootstrap-server $BOOTSTRAP \
  --producer.config /creds/client.properties --topic orders"
got=$(client reader "/opt/kafka/bin/kafka-console-consumer.sh --bootstrap-server $BOOTSTRAP \
  --consumer.config /creds/client.properties --topic orders --group e2e-1 --from-beginning \
  --max-messages 1 --timeout-ms 60000")
echo "$got" | grep -q "hello from e2e" || { echo "consumed: $got"; exit 1; }
if client reader "/opt/kafka/bin/kafka-console-producer.sh --bootstrap-server $BOOTSTRAP \
    --producer.config /creds/client.properties --topic orders <<< denied 2>&1" | grep -q TOPIC_AUTHORIZATION_FAILED; then
  echo "reader is denied writing, as granted"
else
  echo "reader could write to orders"; exit 1
fi

step "helm upgrade with changed values"
helm upgrade kuo charts/kafka-usecase-operator -n kafka-system --reuse-values \
  --set operator.resyncSeconds=60 --set-json "watchNamespaces=[\"$NS\"]" --wait --timeout 5m
kubectl get role kuo-kafka-usecase-operator -n "$NS"
kubectl annotate kafkatopic orders -n "$NS" e2e/touched="$(date +%s)" --overwrite
wait_ready kafkatopic orders 120s

step "helm uninstall (CRDs and objects stay)"
kubectl delete -f e2e/kind/flow.yaml --wait=true --timeout=300s
helm uninstall kuo -n kafka-system --wait
kubectl get crd kafkatopics.kafka.usecase.dev
echo "e2e on kind: passed"
