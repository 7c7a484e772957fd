#!/usr/bin/env bash
# Builds `debian:bookworm-slim` locally with debootstrap when no registry can
# provide it, so Dockerfiles that start `FROM debian:bookworm-slim` build here
# unchanged. The host's CA bundle is copied in because outbound TLS on build
# machines may be re-signed by a local CA. Users with a registry never need
# this: `docker pull debian:bookworm-slim` gives the real image.
#
# The packages come from the mirror (and through the proxy) this host's apt
# is configured for: the first enabled `deb` source for bookworm in
# /etc/apt/sources.list and sources.list.d (one-line or deb822 format), and
# apt's Acquire::http::Proxy. DEBIAN_MIRROR overrides the mirror.
set -euo pipefail

readonly IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
readonly SUITE=bookworm
readonly FALLBACK_MIRROR=http://deb.debian.org/debian
readonly DOCKER="${DOCKER:-/usr/bin/docker}"
APT_DIR="${APT_DIR:-/etc/apt}"

readonly PROG="build-base-image"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Prints the URI of the first enabled `deb` source for suite $1 in the
# one-line files (sources.list, sources.list.d/*.list) and the deb822 files
# (sources.list.d/*.sources) under APT_DIR; nothing when there is none.
apt_mirror() {
  local suite="$1" file
  local -a files=()
  [[ -f "${APT_DIR}/sources.list" ]] && files+=("${APT_DIR}/sources.list")
  for file in "${APT_DIR}"/sources.list.d/*.list "${APT_DIR}"/sources.list.d/*.sources; do
    [[ -f "${file}" ]] && files+=("${file}")
  done
  for file in "${files[@]}"; do
    if [[ "${file}" == *.sources ]]; then
      deb822_mirror "${suite}" <"${file}"
    else
      one_line_mirror "${suite}" <"${file}"
    fi
  done | head -n 1
}

# `deb [options] URI SUITE COMPONENTS...` lines on stdin.
one_line_mirror() {
  awk -v suite="$1" '
    { sub(/#.*/, "") }
    $1 != "deb" { next }
    {
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit }
    }'
}

# deb822 stanzas (Types:, URIs:, Suites:, Enabled:) on stdin.
deb822_mirror() {
  awk -v suite="$1" '
    function flush() {
      if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "") {
        split(uris, u, " "); print u[1]; found = 1; exit
      }
      types = ""; uris = ""; suites = ""; enabled = ""
    }
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*$/ { flush(); next }
    {
      key = tolower($1); $1 = ""; sub(/^ +/, ""); value = $0
      if (key == "types:") types = value
      else if (key == "uris:") uris = value
      else if (key == "suites:") suites = value
      else if (key == "enabled:") enabled = tolower(value)
    }
    END { if (!found) flush() }'
}

# apt's HTTP proxy, if one is configured.
apt_proxy() {
  local proxy=""
  if command -v apt-config >/dev/null 2>&1; then
    eval "$(apt-config shell proxy Acquire::http::Proxy)"
  fi
  [[ -n "${proxy}" && "${proxy}" != DIRECT ]] && printf '%s\n' "${proxy}"
  return 0
}

ROOTFS=""
cleanup() { [[ -n "${ROOTFS}" ]] && rm -rf "${ROOTFS}" "${ROOTFS}.log"; return 0; }

main() {
  if "${DOCKER}" image inspect "${IMAGE}" >/dev/null 2>&1; then
    return 0
  fi
  if "${DOCKER}" pull "${IMAGE}" >/dev/null 2>&1; then
    return 0
  fi
  apt_install_missing debootstrap
  ROOTFS="$(mktemp -d /tmp/gestor-rootfs.XXXXXX)"
  trap cleanup EXIT
  local rootfs="${ROOTFS}" mirror proxy
  mirror="${DEBIAN_MIRROR:-$(apt_mirror "${SUITE}")}"
  mirror="${mirror:-${FALLBACK_MIRROR}}"
  proxy="$(apt_proxy)"
  if [[ -n "${proxy}" ]]; then
    export http_proxy="${http_proxy:-${proxy}}"
  fi
  echo "build-base-image: no registry; debootstrapping ${IMAGE} from ${mirror} (about 30 s)"
  if ! debootstrap --variant=minbase "${SUITE}" "${rootfs}" "${mirror}" >"${rootfs}.log" 2>&1; then
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
  # The image's / is the rootfs directory itself, made by mktemp (0700): as
  # in the official image, 0755, or non-root users cannot reach anything.
  chmod 0755 "${rootfs}"
  tar -C "${rootfs}" -c . | "${DOCKER}" import \
    --change 'CMD ["bash"]' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    - "${IMAGE}" >/dev/null
  echo "build-base-image: ${IMAGE} imported"
}

# Runs when executed, not when sourced (the tests source it for apt_mirror).
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
