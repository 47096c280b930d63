{{/* Names and labels shared by every template. */}}
{{- define "aurora.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aurora.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "aurora.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "aurora.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role: call with (dict "root" $ "role" "chat"). */}}
{{- define "aurora.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aurora.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "aurora.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "aurora.secretName" -}}
{{- default (include "aurora.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{/* The Redis URL: explicit, or the evaluation StatefulSet's. */}}
{{- define "aurora.redisURL" -}}
{{- if include "aurora.embedded" . -}}
{{- else if .Values.evaluation.redis.enabled -}}
{{- printf "redis://%s-redis:6379" (include "aurora.fullname" .) -}}
{{- else -}}
{{- .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{- define "aurora.mongoURL" -}}
{{- if include "aurora.embedded" . -}}
{{- else if .Values.evaluation.mongodb.enabled -}}
{{- printf "mongodb://%s-mongodb:27017/aurorachat" (include "aurora.fullname" .) -}}
{{- else -}}
{{- .Values.mongo.url -}}
{{- end -}}
{{- end -}}

{{/* Environment of every Aurora container: secrets from the Secret only. */}}
{{- define "aurora.env" -}}
- name: AURORA_AUTH_JWT_SECRET
  valueFrom:
    secretKeyRef: {name: {{ include "aurora.secretName" . }}, key: jwt-secret, optional: true}
- name: AURORA_REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ include "aurora.secretName" . }}, key: redis-url, optional: true}
- name: AURORA_MONGO_URL
  valueFrom:
    secretKeyRef: {name: {{ include "aurora.secretName" . }}, key: mongo-url, optional: true}
- name: AURORA_ATTACHMENTS_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "aurora.secretName" . }}, key: s3-access-key, optional: true}
- name: AURORA_ATTACHMENTS_S3_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "aurora.secretName" . }}, key: s3-secret-key, optional: true}
{{- end -}}

{{/* Container spec shared by the per-role Deployments and allInOne:
     call with (dict "root" $ "roles" "chat" "resources" ...). */}}
{{- define "aurora.container" -}}
{{- $root := .root -}}
- name: aurora
  image: {{ include "aurora.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args: ["serve", "--config", "/etc/aurora/aurora.yaml", "--roles={{ .roles }}", "--data-dir", "/data"]
  env:
    {{- include "aurora.env" $root | nindent 4 }}
  ports:
    - {name: http, containerPort: 8080, protocol: TCP}
  livenessProbe:
    httpGet: {path: /healthz, port: http}
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet: {path: /readyz, port: http}
    periodSeconds: 5
    failureThreshold: 2
  startupProbe:
    httpGet: {path: /healthz, port: http}
    periodSeconds: 2
    failureThreshold: 30
  {{- if $root.Values.preStopSleepSeconds }}
  lifecycle:
    preStop:
      sleep: {seconds: {{ $root.Values.preStopSleepSeconds }}}
  {{- end }}
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - {name: config, mountPath: /etc/aurora, readOnly: true}
    - {name: data, mountPath: /data}
    - {name: tmp, mountPath: /tmp}
{{- end -}}

{{- define "aurora.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdownDelaySeconds .Values.drainTimeoutSeconds (default 0 .Values.preStopSleepSeconds) 10 -}}
{{- end -}}
