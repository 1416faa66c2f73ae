{{/* Names, labels and the image: one definition each. */}}

{{- define "atlas.fullname" -}}
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

{{/* The instance (atlas/instance.py): every name Atlas gives its own objects derives from it. */}}
{{- define "atlas.instance" -}}
{{- .Values.instance | default (include "atlas.fullname" .) -}}
{{- end -}}

{{/* A downstream cluster's values Secret, for cluster "<cluster>" (InstanceNames.values_secret). */}}
{{- define "atlas.valuesSecret" -}}
{{- $instance := include "atlas.instance" . -}}
{{- if eq $instance "atlas" -}}<cluster>-envoy-values{{- else -}}{{ $instance }}-<cluster>-envoy-values{{- end -}}
{{- end -}}

{{- define "atlas.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: atlas
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Atlas's pods. */}}
{{- define "atlas.selectorLabels" -}}
app.kubernetes.io/name: atlas
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The observability Envoy's pods; Atlas finds its Service's ClusterIP by these labels. */}}
{{- define "atlas.envoySelectorLabels" -}}
app.kubernetes.io/name: atlas-envoy
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* repository@digest when a digest is given (it wins over the tag), else repository:tag. */}}
{{- define "atlas.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .default .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "atlas.image" -}}
{{- include "atlas.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{- define "atlas.adsHost" -}}
{{- printf "%s-ads.%s.svc.cluster.local" (include "atlas.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* Spread replicas over zones first, then hosts; a missing zone label never blocks. */}}
{{- define "atlas.topologySpread" -}}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- .labels | nindent 6 }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- .labels | nindent 6 }}
{{- end -}}
