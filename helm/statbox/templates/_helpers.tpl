{{- /*
Helpers of the Statbox chart. How to use them:

  include "statbox.labels" .
      Labels for every object of this chart: {{- include "statbox.labels" . | nindent 4 }}

  include "statbox.secretValue" (dict "root" $ "key" "user-password" "value" .Values.secrets.userPassword "length" 16)
      One base64 value of the statbox-secrets Secret, resolved in this order: the value given
      in the chart's values; else the one already stored in the cluster's Secret (`lookup`,
      so an upgrade keeps what an install generated); else a new random one of "length".

  include "statbox.authType" .
      statbox.auth.type, or the settings' default (shared-password) when unset.

  include "statbox.oauthClientSecret" .
      The base64 OAuth client secret for statbox-secrets: secrets.oauthClientSecret, else the
      one already stored in the cluster's Secret (`lookup`); never generated (the identity
      provider issues it), so the render fails naming the key when neither is there.

  include "statbox.settings" .
      The `statbox:` values as the settings JSON the hub and the gateway read, with `mode`
      set to kubernetes and any password or client secret left out (they travel in statbox-secrets only).

  include "statbox.runtime" .
      The runtime record hub_config.py loads through $STATBOX_RUNTIME (statbox.runtime).

Names are fixed ("statbox-config", "statbox-secrets"), as zero-to-jupyterhub's are ("hub",
"proxy-public"): the subcharts' values cannot be templated, and they refer to these objects.
*/}}

{{- define "statbox.labels" -}}
app.kubernetes.io/name: statbox
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "statbox.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace "statbox-secrets" -}}
{{- if .value -}}
{{- .value | b64enc -}}
{{- else if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum (int .length) | b64enc -}}
{{- end -}}
{{- end -}}

{{- define "statbox.authType" -}}
{{- ((.Values.statbox | default dict).auth | default dict).type | default "shared-password" -}}
{{- end -}}

{{- define "statbox.oauthClientSecret" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace "statbox-secrets" -}}
{{- $given := (.Values.secrets | default dict).oauthClientSecret -}}
{{- if $given -}}
{{- $given | b64enc -}}
{{- else if and $existing $existing.data (hasKey $existing.data "oauth-client-secret") -}}
{{- index $existing.data "oauth-client-secret" -}}
{{- else -}}
{{- $clientId := ((.Values.statbox | default dict).auth | default dict).client_id | default "" -}}
{{- fail (printf "secrets.oauthClientSecret: statbox.auth.type %s needs the client secret your identity provider issued for client_id %q, and none is given or stored; set secrets.oauthClientSecret, or keep it in a Secret of your own and name it in secrets.existingSecret" (include "statbox.authType" .) $clientId) -}}
{{- end -}}
{{- end -}}

{{- define "statbox.settings" -}}
{{- $settings := deepCopy (.Values.statbox | default dict) -}}
{{- $_ := set $settings "mode" "kubernetes" -}}
{{- if kindIs "map" $settings.auth -}}
{{- $_ := unset $settings.auth "user_password" -}}
{{- $_ := unset $settings.auth "admin_password" -}}
{{- $_ := unset $settings.auth "client_secret" -}}
{{- end -}}
{{- toJson $settings -}}
{{- end -}}

{{- define "statbox.runtime" -}}
{{- /* dashboards, classroom, indicators: the ports of the services in the hub pod, as jupyterhub.hub.service.extraPorts opens them */ -}}
{{- $ports := dict "public" 8000 "hub_api" 8081 "proxy_api" 8001 "gateway_api" 8000 "gateway_http" 80 "gateway_tcp" 8786 "dashboards" 8010 "classroom" 8020 "indicators" 8030 -}}
{{- $record := dict "settings" (include "statbox.settings" . | fromJson) "ports" $ports -}}
{{- /* python3 on the PATH of Statbox's images runs the cullers and the user servers */ -}}
{{- $_ := set $record "proxy_command" list -}}
{{- $_ := set $record "python" "python3" -}}
{{- $_ := set $record "run_as" nil -}}
{{- toPrettyJson $record -}}
{{- end -}}
