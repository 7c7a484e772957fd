#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock: installs Debian's
# docker.io when dockerd is missing and starts dockerd in the background when
# nothing answers. Idempotent; used by `make test` and by CI.
set -euo pipefail

readonly DOCKER=/usr/bin/docker
readonly DOCKERD_LOG=/var/log/gestor-dockerd.log

readonly PROG="ensure-docker"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

engine_answers() {
  "${DOCKER}" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

install_engine() {
  if [[ -x /usr/sbin/dockerd && -x "${DOCKER}" ]]; then
    return 0
  fi
  apt_install_missing docker.io
}

start_engine() {

  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl start docker || true
  fi
  if ! engine_answers; then
    nohup /usr/sbin/dockerd >"${DOCKERD_LOG}" 2>&1 &
  fi
  for _ in $(seq 1 60); do
    engine_answers && return 0
    sleep 0.5
  done
  err "dockerd did not answer within 30 s; see ${DOCKERD_LOG}"
  return 1
}

main() {
  if engine_answers; then
    return 0
  fi
  install_engine
  start_engine
  echo "ensure-docker: engine $("${DOCKER}" version --format '{{.Server.Version}}') is up"
}

main "$@"
