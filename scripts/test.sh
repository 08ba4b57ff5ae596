#!/usr/bin/env bash
# Install what the test suite needs, then run it. Usage: scripts/test.sh [cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null || need+=(git)
command -v openssl >/dev/null || need+=(openssl)
# Real servers the tests start on loopback: BIND 9 for RFC 2136, Pebble for ACME.
command -v named >/dev/null || need+=(bind9)
command -v tsig-keygen >/dev/null || need+=(bind9-utils)
command -v dig >/dev/null || need+=(dnsutils)
command -v pebble >/dev/null || need+=(pebble)
# Crash tests kill certform at exact syscalls; the key scanner is checked against real keys.
command -v strace >/dev/null || need+=(strace)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
# State pushes go to a loopback sshd and to `git http-backend` (part of git); the systemd
# example is checked with systemd-analyze.
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v keytool >/dev/null || need+=(default-jre-headless)
# Keys in the state repository are checked with the real age tools.
command -v age-keygen >/dev/null || need+=(age)
# The generated man page is checked with groff.
command -v groff >/dev/null || need+=(groff-base)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "missing: ${need[*]} (install with: sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
fi

cargo test --all-targets "$@"
