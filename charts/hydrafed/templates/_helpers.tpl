{{/* Shared names and labels. */}}
{{- define "hydrafed.name" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}-operator{{- end -}}
{{- define "hydrafed.labels" -}}
app.kubernetes.io/name: hydrafed
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "hydrafed.selector" -}}
app.kubernetes.io/name: hydrafed
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{/* The namespaces the operator watches: the list, or the release namespace. */}}
{{- define "hydrafed.namespaces" -}}
{{- if .Values.watchNamespaces }}{{ join "," .Values.watchNamespaces }}{{ else }}{{ .Release.Namespace }}{{ end -}}
{{- end -}}
