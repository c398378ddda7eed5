{{/* The release's full name: "<release>-kafka-usecase-operator", or the release name if it already says so. */}}
{{- define "kuo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kuo.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kuo.labels" -}}
{{ include "kuo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kafka-usecase-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kuo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kuo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
What the operator does in every namespace it serves, and nothing more (a test removes each rule
in turn and finds the 403 it causes in the API server's audit log):
- its four kinds: watched (list, watch), finalizers and annotations (patch), status (patch);
  a topic's, user's or grant's KafkaUseCase read when it is handled (get);
- a use case's children: written by server-side apply, which is a patch that creates the object
  the first time (create, patch), listed to notice one deleted and put it back (list); StatefulSets
  and Pods read back for the status (get, list, watch); ConfigMaps read for the configuration
  versions pods still run (get); Pods restarted by the roller (delete) and marked for a manual
  roll (patch);
- Secrets: generated credentials (create), read back (get), updated on rotation and their owner
  kept in line with storage.deleteClaim (patch);
- Events it posts (create).
*/}}
{{- define "kuo.namespacedRules" -}}
- apiGroups: ["kafka.usecase.dev"]
  resources: ["kafkausecases", "kafkatopics", "kafkausers", "kafkaacls"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["kafka.usecase.dev"]
  resources: ["kafkausecases"]
  verbs: ["get"]
- apiGroups: ["kafka.usecase.dev"]
  resources: ["kafkausecases/status", "kafkatopics/status", "kafkausers/status", "kafkaacls/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
