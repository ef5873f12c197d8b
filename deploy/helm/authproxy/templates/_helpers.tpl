{{- define "authproxy.name" -}}{{ .Release.Name }}-authproxy{{- end }}
{{- define "authproxy.labels" -}}
app.kubernetes.io/name: authproxy
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
