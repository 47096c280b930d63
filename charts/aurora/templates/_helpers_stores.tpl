{{/* Whether the pods use the embedded stores (allInOne only). */}}
{{- define "aurora.embedded" -}}
{{- if and .Values.allInOne.enabled .Values.allInOne.embeddedStores -}}true{{- end -}}
{{- end -}}
