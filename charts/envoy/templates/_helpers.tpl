{{- define "envoy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "envoy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: atlas
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "envoy.selectorLabels" -}}
app.kubernetes.io/name: atlas-envoy
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The bootstrap's port for a static listener by name (0 when absent). */}}
{{- define "envoy.staticPort" -}}
{{- $port := 0 -}}
{{- range ((.root.Values.bootstrap.static_resources | default dict).listeners | default list) -}}
{{- if eq .name $.name -}}{{- $port = .address.socket_address.port_value -}}{{- end -}}
{{- end -}}
{{- $port -}}
{{- end -}}
