{{/* The chart's name, and the objects' name: <release>-<name> unless overridden. */}}
{{- define "authproxy.name" -}}
{{- default "authproxy" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "authproxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "authproxy.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* What selects the pods: never changes over upgrades. */}}
{{- define "authproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "authproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "authproxy.labels" -}}
{{ include "authproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "authproxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "authproxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "authproxy.rootSecret" -}}
{{- default (printf "%s-root" (include "authproxy.fullname" .)) .Values.rootPassword.existingSecret }}
{{- end }}

{{/*
authproxy.merge (list DST SRC): SRC merged into DST in place, key by key;
maps merge, anything else (false, 0 and "" included, unlike sprig's
mergeOverwrite) replaces.
*/}}
{{- define "authproxy.merge" -}}
{{- $dst := index . 0 }}
{{- range $k, $v := index . 1 }}
{{- if and (kindIs "map" $v) (kindIs "map" (get $dst $k)) }}
{{- include "authproxy.merge" (list (get $dst $k) $v) }}
{{- else }}
{{- $_ := set $dst $k $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* The config the values describe, before extraConfigFiles. */}}
{{- define "authproxy.baseConfig" -}}
listen: "0.0.0.0:19530"
backend:
  address: {{ .Values.backend.address | quote }}
  {{- with .Values.backend.rest }}
  rest: {{ . | quote }}
  {{- end }}
common:
  security:
    {{- toYaml .Values.common.security | nindent 4 }}
    defaultRootPasswordFile: /etc/authproxy-root/{{ .Values.rootPassword.key }}
credentials:
  store: {{ .Values.store.type }}
  file: /var/lib/authproxy/credentials.yaml
  {{- if eq .Values.store.type "etcd" }}
  {{- $etcd := .Values.store.etcd }}
  etcd:
    endpoints: {{ $etcd.endpoints | toJson }}
    prefix: {{ $etcd.prefix | quote }}
    {{- if $etcd.tls.secret }}
    tls:
      caFile: /etc/authproxy-etcd/ca.crt
      {{- if $etcd.tls.clientCertificate }}
      certFile: /etc/authproxy-etcd/tls.crt
      keyFile: /etc/authproxy-etcd/tls.key
      {{- end }}
    {{- end }}
    {{- if $etcd.username }}
    username: {{ $etcd.username | quote }}
    passwordEnv: ETCD_PASSWORD
    {{- end }}
  {{- end }}
{{- if .Values.tls.secret }}
tls:
  certFile: /etc/authproxy-tls/tls.crt
  keyFile: /etc/authproxy-tls/tls.key
  {{- if .Values.tls.clientAuth }}
  clientCAFile: /etc/authproxy-tls/ca.crt
  clientAuth: {{ .Values.tls.clientAuth }}
  {{- end }}
{{- end }}
admin:
  # Health, readiness and metrics: reachable by the kubelet and the scraper.
  listen: "0.0.0.0:{{ .Values.metrics.port }}"
log:
  level: {{ .Values.log.level }}
  format: {{ .Values.log.format }}
{{- end }}

{{/* The config the pods read: the base, then each extraConfigFiles file merged over it. */}}
{{- define "authproxy.config" -}}
{{- $cfg := include "authproxy.baseConfig" . | fromYaml }}
{{- range $name, $text := .Values.extraConfigFiles }}
{{- $extra := $text | fromYaml }}
{{- if hasKey $extra "Error" }}
{{- fail (printf "extraConfigFiles.%s is not YAML: %s" $name $extra.Error) }}
{{- end }}
{{- include "authproxy.merge" (list $cfg $extra) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
