#!/usr/bin/env bash
# Builds `debian:bookworm-slim` locally with debootstrap when no registry can
# provide it, so Dockerfiles that start `FROM debian:bookworm-slim` build here
# unchanged. The host's CA bundle is copied in because outbound TLS on build
# machines may be re-signed by a local CA. Users with a registry never need
# this: `docker pull debian:bookworm-slim` gives the real image.
set -euo pipefail

readonly IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
readonly MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly DOCKER="${DOCKER:-/usr/bin/docker}"

err() { printf 'build-base-image: %s\n' "$*" >&2; }

ROOTFS=""
cleanup() { [[ -n "${ROOTFS}" ]] && rm -rf "${ROOTFS}" "${ROOTFS}.log"; return 0; }

main() {
  if "${DOCKER}" image inspect "${IMAGE}" >/dev/null 2>&1; then
    return 0
  fi
  if "${DOCKER}" pull "${IMAGE}" >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
  fi
  ROOTFS="$(mktemp -d /tmp/gestor-rootfs.XXXXXX)"
  trap cleanup EXIT
  local rootfs="${ROOTFS}"
  echo "build-base-image: no registry; debootstrapping ${IMAGE} (about 30 s)"
  if ! debootstrap --variant=minbase bookworm "${rootfs}" "${MIRROR}" >"${rootfs}.log" 2>&1; then
    err "debootstrap failed; see ${rootfs}.log"
    return 1
  fi
  # Slim it the way the official image is slimmed.
  rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/* \
    "${rootfs}"/usr/share/doc/* "${rootfs}"/usr/share/man/* "${rootfs}"/usr/share/locale/*
  mkdir -p "${rootfs}/etc/ssl/certs"
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "${rootfs}/etc/ssl/certs/ca-certificates.crt"
  fi
  tar -C "${rootfs}" -c . | "${DOCKER}" import \
    --change 'CMD ["bash"]' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    - "${IMAGE}" >/dev/null
  echo "build-base-image: ${IMAGE} imported"
}

main "$@"
