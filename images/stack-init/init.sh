#!/bin/sh
#
# The stack's one-shot init (docker-compose.yml, service `stack-init`): runs
# before every other service, on each `up`, so `docker compose up` works on
# a fresh checkout with no step before it.
#
#  - secrets: 32 random bytes in hex, generated once into the stack-secrets
#    volume and kept: logger-token (the log service's write token, sent by
#    gestor and Alertmanager), logger-read-token (its reads) and
#    grafana-admin-password. A value set in the environment or in .env
#    (LOGGER_TOKEN, LOGGER_READ_TOKEN, GRAFANA_ADMIN_PASSWORD) overrides the
#    file. Grafana's default password (`admin`) is refused.
#  - facts: the Docker host's name (STACK_HOSTNAME, else the host's
#    /etc/hostname) for gestor's records, and Prometheus' file_sd target for
#    gestor carrying it as the `host` label, in the stack-facts volume.
#
# Files are written under a temporary name and renamed, so a reader never
# sees half a secret. POSIX sh, head, od, tr: any Debian-based image.
set -eu

readonly SECRETS=/run/gestor-stack/secrets
readonly FACTS=/run/gestor-stack/facts
readonly HOST_HOSTNAME=/host/etc/hostname

err() {
	printf 'stack-init: %s\n' "$*" >&2
}

random_hex() {
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# Writes $2 to file $1 with mode $3, atomically.
put() {
	tmp="$1.tmp.$$"
	printf '%s' "$2" >"${tmp}"
	chmod "$3" "${tmp}"
	mv -f "${tmp}" "$1"
}

# Secret $1: the override $2 when set, else the file's value, else a new one.
# Mode 0444: every service of the stack that mounts the volume runs as its
# own user (gestor root, the log service `logger`, Alertmanager `nobody`,
# Grafana 472); the volume is mounted into nothing else, and its directory
# cannot be listed by them (0711).
secret() {
	file="${SECRETS}/$1"
	if [ -n "$2" ]; then
		put "${file}" "$2" 0444
		echo "stack-init: $1 from the environment (.env)"
	elif [ ! -s "${file}" ]; then
		put "${file}" "$(random_hex)" 0444
		echo "stack-init: generated $1"
	fi
}

host_name() {
	name="${STACK_HOSTNAME:-}"
	if [ -z "${name}" ] && [ -r "${HOST_HOSTNAME}" ]; then
		name="$(head -n 1 "${HOST_HOSTNAME}" | tr -d ' \t\r')"
	fi
	if [ -z "${name}" ]; then
		err "no host name: the host's /etc/hostname is empty or not mounted; set STACK_HOSTNAME"
		exit 1
	fi
	case "${name}" in
	*[!A-Za-z0-9._-]*)
		err "host name '${name}': only letters, digits, '.', '_' and '-' (set STACK_HOSTNAME)"
		exit 1
		;;
	esac
	printf '%s\n' "${name}"
}

main() {
	if [ "${GRAFANA_ADMIN_PASSWORD:-}" = admin ]; then
		err "GRAFANA_ADMIN_PASSWORD=admin is Grafana's default: remove it (a random one is generated) or choose another"
		exit 1
	fi
	umask 022
	mkdir -p "${SECRETS}" "${FACTS}/prometheus"
	chmod 0711 "${SECRETS}"
	secret logger-token "${LOGGER_TOKEN:-}"
	secret logger-read-token "${LOGGER_READ_TOKEN:-}"
	secret grafana-admin-password "${GRAFANA_ADMIN_PASSWORD:-}"
	host="$(host_name)"
	put "${FACTS}/hostname" "${host}" 0444
	put "${FACTS}/prometheus/gestor.yml" "# Written by stack-init: gestor on this Docker host.
- targets: [\"gestor:9797\"]
  labels:
    host: \"${host}\"
" 0444
	echo "stack-init: host name ${host}; secrets in the stack-secrets volume"
}

main "$@"
