{{- define "envoy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* repository@digest when a digest is given (it wins over the tag), else repository:tag. */}}
{{- define "envoy.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
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
