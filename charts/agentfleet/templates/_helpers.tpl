{{- define "agentfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "agentfleet.labels" -}}
app.kubernetes.io/name: agentfleet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "agentfleet.selectorLabels" -}}
app.kubernetes.io/name: agentfleet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "agentfleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The queue's URL as every Pod sees it: workers run in other namespaces, so the bundled
Redis is named by its fully qualified Service name, with the password of its Secret. */}}
{{- define "agentfleet.redisUrl" -}}
{{- if .Values.redis.url -}}
{{- .Values.redis.url -}}
{{- else if .Values.redis.deploy -}}
{{- printf "redis://:%s@agentfleet-redis.%s.svc.%s:6379/0" (include "agentfleet.redisPassword" .) .Release.Namespace .Values.clusterDomain -}}
{{- else if not .Values.redis.existingSecret -}}
{{- fail "set redis.url or redis.existingSecret to your Redis (7+), or redis.deploy=true for a bundled single-node Redis" -}}
{{- end -}}
{{- end -}}

{{/* The bundled Redis's password: generated once, then kept from the existing Secret on
every upgrade (a new one would lock out running workers). */}}
{{- define "agentfleet.redisPassword" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace "agentfleet-redis" -}}
{{- if and $existing (index $existing.data "password") -}}
{{- index $existing.data "password" | b64dec -}}
{{- else -}}
{{- if not (hasKey .Values.redis "_generatedPassword") -}}
{{- $_ := set .Values.redis "_generatedPassword" (randAlphaNum 32) -}}
{{- end -}}
{{- .Values.redis._generatedPassword -}}
{{- end -}}
{{- end -}}

{{/* Where Pods read the queue's URL: the user's Secret, or the one this chart renders. */}}
{{- define "agentfleet.redisUrlSecret" -}}
{{- if .Values.redis.existingSecret -}}
name: {{ .Values.redis.existingSecret }}
key: {{ .Values.redis.existingSecretKey }}
{{- else -}}
name: {{ include "agentfleet.fullname" . }}-queue
key: url
{{- end -}}
{{- end -}}

{{- define "agentfleet.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ . | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/* The port of a URL: explicit, or the scheme's default. (dict "url" URL "default" PORT) */}}
{{- define "agentfleet.urlPort" -}}
{{- $host := (urlParse .url).host -}}
{{- if regexMatch ":[0-9]+$" $host -}}
{{- regexFind "[0-9]+$" $host -}}
{{- else -}}
{{- .default -}}
{{- end -}}
{{- end -}}

{{/* Egress to DNS, on any address: kube-dns Pods, NodeLocal DNSCache, DNS on the nodes. */}}
{{- define "agentfleet.dnsEgress" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}

{{/* Egress to the queue: the bundled Redis' Pods, or the port of redis.url. */}}
{{- define "agentfleet.redisEgress" -}}
{{- if .Values.redis.deploy }}
- to:
    - podSelector:
        matchLabels: {app.kubernetes.io/name: agentfleet-redis}
  ports: [{port: 6379, protocol: TCP}]
{{- else if .Values.redis.url }}
- ports: [{port: {{ include "agentfleet.urlPort" (dict "url" .Values.redis.url "default" "6379") }}, protocol: TCP}]
{{- end }}
{{- end -}}

{{/* Lint waivers shared by every workload of the chart (kube-score and checkov, run by
`make lint`): each with the reason a reviewer would accept. Its argument: more kube-score
checks to ignore on this object, "" for none. */}}
{{- define "agentfleet.lintWaivers" -}}
# kube-score: IfNotPresent on purpose: release tags are immutable, and Always would stop
# Pods from starting on nodes with preloaded images and no registry (air-gapped, local).
kube-score/ignore: {{ list "container-image-pull-policy" . | compact | join "," }}
checkov.io/skip1: CKV_K8S_15=IfNotPresent on purpose - release tags are immutable; Always breaks air-gapped nodes
checkov.io/skip2: CKV_K8S_11=No CPU limit on purpose - throttling misses heartbeats and leases; the request reserves CPU
checkov.io/skip3: CKV_K8S_43=Images are pinned by release tag; to pin a digest set the tag to VERSION@sha256:DIGEST
checkov.io/skip4: CKV_K8S_35=The process reads its settings from the environment; the Secret reaches no log and no sandbox
{{- end -}}
