{{/* Labels on every object the chart creates. */}}
{{- define "vpc-cni.labels" -}}
app.kubernetes.io/name: aws-node
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
k8s-app: aws-node
{{- end }}

{{/* The pod selector: stable across upgrades, so it never includes the version. */}}
{{- define "vpc-cni.selector" -}}
k8s-app: aws-node
{{- end }}

{{- define "vpc-cni.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
