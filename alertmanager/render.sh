#!/bin/sh
#
# Prints Alertmanager's configuration for gestor's stack on stdout, from the
# environment: Alertmanager's own file cannot read environment variables, so
# docker-compose.yml runs this at every start (POSIX sh and sed only: the
# official busybox image and the Debian stand-in both have them) and starts
# Alertmanager on the result, written to a tmpfs with mode 0600.
#
#   ALERT_EMAIL_TO           recipients, comma-separated (critical alerts)
#   ALERT_EMAIL_FROM         sender address
#   ALERT_SMTP_SMARTHOST     the relay, host:port
#   ALERT_SMTP_USERNAME      optional; ALERT_SMTP_PASSWORD or _FILE with it
#   ALERT_SMTP_REQUIRE_TLS   STARTTLS required (default true)
#   ALERT_CHAT_WEBHOOK_URL   Slack-compatible incoming webhook (critical and
#                            warning alerts), or ALERT_CHAT_WEBHOOK_URL_FILE
#   ALERT_CHAT_CHANNEL       optional channel override
#   ALERT_WATCHDOG_URL       dead man's switch: POSTed every minute while the
#                            whole pipeline works, or ALERT_WATCHDOG_URL_FILE
#   LOGGER_ALERTS_URL        the log service's webhook (http://logger:8000/alerts)
#   LOGGER_TOKEN_FILE        the log service's write token (a file)
#
# A *_FILE variable names a file holding the value (a Swarm secret, the
# stack's secrets volume). A receiver left unconfigured stays in the routing
# tree with no integration, so every route stays valid and the log service
# still gets every alert; one line on stderr says which are missing. Half an
# e-mail configuration is an error: exit 2, with what is missing.
set -eu

NL='
'

err() {
	printf 'render.sh: %s\n' "$*" >&2
}

# The value of variable $1, or the content of the file named by ${1}_FILE.
value() {
	eval "direct=\${$1:-}"
	eval "file=\${$1_FILE:-}"
	if [ -n "${direct}" ]; then
		printf '%s' "${direct}"
	elif [ -n "${file}" ]; then
		if [ ! -r "${file}" ]; then
			err "$1_FILE=${file}: cannot read the file"
			exit 2
		fi
		cat "${file}"
	fi
}

# A YAML double-quoted scalar of $2, for setting $1; a value spanning lines
# is refused (nothing of Alertmanager's takes one).
quoted() {
	case "$2" in
	*"${NL}"*)
		err "$1 holds a line break"
		exit 2
		;;
	esac
	printf '"%s"' "$(printf '%s' "$2" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

email_to="$(value ALERT_EMAIL_TO)"
email_from="$(value ALERT_EMAIL_FROM)"
smarthost="$(value ALERT_SMTP_SMARTHOST)"
smtp_user="$(value ALERT_SMTP_USERNAME)"
smtp_password="$(value ALERT_SMTP_PASSWORD)"
require_tls="${ALERT_SMTP_REQUIRE_TLS:-true}"
chat_url="$(value ALERT_CHAT_WEBHOOK_URL)"
chat_channel="$(value ALERT_CHAT_CHANNEL)"
watchdog_url="$(value ALERT_WATCHDOG_URL)"
logger_url="${LOGGER_ALERTS_URL:-http://logger:8000/alerts}"
logger_token_file="${LOGGER_TOKEN_FILE:-/run/gestor-stack/secrets/logger-token}"

case "${require_tls}" in
true | false) ;;
*)
	err "ALERT_SMTP_REQUIRE_TLS=${require_tls}: expected true or false"
	exit 2
	;;
esac

missing=""
email=""
if [ -n "${email_to}${email_from}${smarthost}" ]; then
	for pair in "ALERT_EMAIL_TO:${email_to}" "ALERT_EMAIL_FROM:${email_from}" \
		"ALERT_SMTP_SMARTHOST:${smarthost}"; do
		if [ -z "${pair#*:}" ]; then
			err "e-mail is half configured: ${pair%%:*} is not set (see docs/stack.md)"
			exit 2
		fi
	done
	case "${smarthost}" in
	*:[0-9]*) ;;
	*)
		err "ALERT_SMTP_SMARTHOST=${smarthost}: expected host:port"
		exit 2
		;;
	esac
	email="    email_configs:
      - to: $(quoted ALERT_EMAIL_TO "${email_to}")
        from: $(quoted ALERT_EMAIL_FROM "${email_from}")
        smarthost: $(quoted ALERT_SMTP_SMARTHOST "${smarthost}")
        require_tls: ${require_tls}
        send_resolved: true"
	if [ -n "${smtp_user}" ]; then
		email="${email}
        auth_username: $(quoted ALERT_SMTP_USERNAME "${smtp_user}")
        auth_password: $(quoted ALERT_SMTP_PASSWORD "${smtp_password}")"
	fi
else
	missing="${missing} e-mail"
fi

chat=""
if [ -n "${chat_url}" ]; then
	chat="    slack_configs:
      - api_url: $(quoted ALERT_CHAT_WEBHOOK_URL "${chat_url}")
        send_resolved: true
        # The default title names the alert and its labels; the text says
        # what happened, one line per alert.
        text: '{{ range .Alerts }}{{ .Annotations.summary }}{{ \"\\n\" }}{{ end }}'"
	if [ -n "${chat_channel}" ]; then
		chat="${chat}
        channel: $(quoted ALERT_CHAT_CHANNEL "${chat_channel}")"
	fi
else
	missing="${missing} chat"
fi

watchdog=""
if [ -n "${watchdog_url}" ]; then
	watchdog="    webhook_configs:
      - url: $(quoted ALERT_WATCHDOG_URL "${watchdog_url}")
        send_resolved: false"
else
	missing="${missing} watchdog"
fi

if [ -n "${missing}" ]; then
	err "not configured:${missing}; alerts of those receivers reach only the log service (docs/stack.md, \"Alerts to people\")"
fi

cat <<EOF
# Rendered by alertmanager/render.sh at Alertmanager's start: do not edit the
# result, edit the script or the environment (docs/stack.md).
global:
  resolve_timeout: 5m

route:
  receiver: log-service
  # One notification per alert and Docker host: on a fleet, gestor down on
  # two nodes is two notifications, each naming its node.
  group_by: [alertname, host]
  # A person is told 30 s after a group's first alert (time for the same
  # alert of other hosts to join), of its changes at most every 5 minutes,
  # and again every 4 hours while it fires.
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    # The dead man's switch: Watchdog always fires, so the heartbeat service
    # hears from the whole pipeline (rules, Prometheus, Alertmanager, the
    # network out) every minute and raises its own alarm when it stops.
    # Nobody else needs it. A repeat is sent at a group_interval tick once
    # repeat_interval has passed since the last: 50 s < 1 m makes every
    # tick one (1 m would skip every other tick, by a few milliseconds).
    - receiver: watchdog
      matchers: ['alertname="Watchdog"']
      group_wait: 0s
      group_interval: 1m
      repeat_interval: 50s
    # The log service keeps every alert (GET /logs?event=alert, the live
    # page's "alerts firing"); it stores a repeat once.
    - receiver: log-service
      continue: true
      group_wait: 10s
      group_interval: 1m
    # Page-worthy: critical alerts by e-mail, GestorLoggerDown and the
    # monitoring's own failures included, never only to the log service.
    - receiver: email
      matchers: ['severity="critical"']
      continue: true
    # Chat: every critical and warning alert.
    - receiver: chat
      matchers: ['severity=~"critical|warning"']

inhibit_rules:
  # A host whose gestor is down sends no records and runs no stage: one page
  # (GestorDown) rather than five for that host.
  - source_matchers: ['alertname="GestorDown"']
    target_matchers:
      - alertname=~"GestorRecordsStopped|GestorCycleStageFailing|GestorCyclesFailing|GestorCycleStalled|GestorLogQueueGrowing|GestorKillFailures"
    equal: [host]
  # A log service that is down receives nothing from any host: records
  # stopped everywhere is its consequence, not news.
  - source_matchers: ['alertname=~"GestorLoggerDown|GestorLoggerAbsent"']
    target_matchers: ['alertname=~"GestorRecordsStopped|GestorLoggerReceivesNothing"']

receivers:
  - name: log-service
    webhook_configs:
      - url: $(quoted LOGGER_ALERTS_URL "${logger_url}")
        send_resolved: true
        # Every alert of the group in each notification (0: no limit).
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: $(quoted LOGGER_TOKEN_FILE "${logger_token_file}")
  - name: email
${email}
  - name: chat
${chat}
  - name: watchdog
${watchdog}
EOF
