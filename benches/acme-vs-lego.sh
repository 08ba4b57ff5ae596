#!/usr/bin/env bash
# Side-by-side ACME issuance benchmark: certform vs lego (vs certbot, when installed).
#
# Every contender issues the same names (n1.example.test ... n50.example.test, one certificate
# each, ECDSA P-256) from its own freshly started Pebble (always-valid, no validation sleep, no
# rejected nonces, no authorization reuse), so none profits from another's accounts or
# authorizations:
#   1. certform: ONE `certform apply --auto-approve --parallelism N` over 50 certificates
#      (HTTP-01 through the built-in responder, a files deploy, state committed to git);
#   2. lego, one process per name, one after the other;
#   3. lego, one process per name, 30 at a time (xargs -P 30);
#   4. certbot, one process per name, one after the other (only when installed; --no-certbot
#      skips it: about 3 s per certificate).
# For each it prints the wall time, certificates per second and the CPU time Pebble spent
# (utime+stime of the pebble process from /proc/PID/stat, after minus before, in ms), then the
# ratio of certform against both lego runs and the issue's goals (exit status 0 only when all
# are met).
#
# Parallel lego processes each get their own --path (lego's account files are not safe to
# create from 30 processes at once) and their own HTTP-01 port (Pebble in always-valid mode
# fetches nothing). Every client process runs under a watchdog (WATCHDOG seconds, default 60):
# Debian's Pebble 2.4.0 can deadlock for good under concurrent requests (a newOrder in its
# FindValidAuthorization against an authorization read and a store write: about 1 certform
# run in 10 with 50 certificates at once, with or without the changes made with this script;
# any concurrent client can trigger it). A stalled run gets Pebble's goroutine dump
# and is repeated on a fresh Pebble; the report says how often that happened.
#
# Usage: benches/acme-vs-lego.sh [--names N] [--parallelism N] [--certform-runs N]
#                                [--lego-parallel N] [--no-certbot] [--certform-only] [--keep]
#   --parallelism: passed to certform apply (default 50: every certificate at once)
#   --certform-runs: certform runs, each with its own Pebble; the median is reported (default 3)
#   --certform-only: skip the peers (for profiling certform); --keep: keep the work directory
# Needs: pebble, pebble-challtestsrv, lego, openssl (apt-get install -y pebble lego); certbot is
# optional. Installs nothing. Runs as an ordinary user on loopback only.
# CERTFORM_BIN=PATH runs that certform binary instead of building a release one (to compare two
# builds side by side, e.g. before and after a change).
set -euo pipefail

NAMES=50
PARALLELISM=50
CERTFORM_RUNS=3
LEGO_PARALLEL=30
CERTBOT=auto
KEEP=0
PEERS=1

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --names) NAMES=$2; shift 2 ;;
    --parallelism) PARALLELISM=$2; shift 2 ;;
    --certform-runs) CERTFORM_RUNS=$2; shift 2 ;;
    --lego-parallel) LEGO_PARALLEL=$2; shift 2 ;;
    --no-certbot) CERTBOT=no; shift ;;
    --keep) KEEP=1; shift ;;
    --certform-only) PEERS=0; CERTBOT=no; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

missing=()
needed=(pebble pebble-challtestsrv openssl cargo timeout)
[ "$PEERS" = 1 ] && needed+=(lego)
for tool in "${needed[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  echo "install with: apt-get install -y pebble lego openssl (certbot optional: apt-get install -y certbot)" >&2
  exit 1
fi
if [ "$CERTBOT" = auto ]; then
  if command -v certbot >/dev/null 2>&1; then CERTBOT=yes; else CERTBOT=no; fi
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${CERTFORM_BIN:-}" ]; then
  certform=$CERTFORM_BIN
else
  echo "building certform (release) ..." >&2
  (cd "$root" && cargo build --release --quiet)
  certform="$root/target/release/certform"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/acme-vs-lego.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then
    echo "kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -------------------------------------------------------------------------------

taken_ports=" "
# Ports are picked outside the kernel's ephemeral range, so no outgoing connection (lego's, a
# test's) takes one between the check below and the server binding it.
if read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then :; else
  eph_lo=32768 eph_hi=60999
fi
if [ $((eph_lo - 10000)) -ge 2000 ]; then
  port_lo=10000 port_span=$((eph_lo - 10000))
else
  port_lo=$((eph_hi + 1)) port_span=$((65535 - eph_hi))
fi
# A loopback port nothing listens on (TCP or UDP) and not handed out before in this run.
free_port() {
  local port
  while :; do
    port=$((port_lo + (RANDOM * 32768 + RANDOM) % port_span))
    case "$taken_ports" in *" $port "*) continue ;; esac
    if command -v ss >/dev/null 2>&1; then
      [ -z "$(ss -Htuln "sport = :$port" 2>/dev/null)" ] || continue
    elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      continue
    fi
    taken_ports+="$port "
    echo "$port"
    return
  done
}

wait_port() { # PORT PID LOG
  local i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "server exited early; log $3:" >&2
      cat "$3" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1 after 10 s; log $3:" >&2
  cat "$3" >&2
  exit 1
}

now_ns() { date +%s%N; }

clk_tck=$(getconf CLK_TCK)
# utime+stime of PID in ms (fields 14 and 15 of /proc/PID/stat, after the `(comm)` field).
cpu_ms() {
  local stat rest
  stat=$(cat "/proc/$1/stat")
  rest=${stat##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $(((${12} + ${13}) * 1000 / clk_tck))
}

# --- shared fixtures: listener TLS for Pebble, DNS answering 127.0.0.1 ----------------------

tls="$work/tls"
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=acme-vs-lego throwaway CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$tls/listener.key" -out "$tls/listener.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' >"$tls/listener.ext"
openssl x509 -req -in "$tls/listener.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
  -CAcreateserial -days 2 -extfile "$tls/listener.ext" -out "$tls/listener.pem" 2>/dev/null

dns_port=$(free_port)
dns_mgmt=$(free_port)
pebble-challtestsrv -management "127.0.0.1:$dns_mgmt" -dns01 "127.0.0.1:$dns_port" \
  -http01 "" -https01 "" -tlsalpn01 "" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
  >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
wait_port "$dns_mgmt" "${pids[-1]}" "$work/challtestsrv.log"

# Start a fresh Pebble; sets PEBBLE_PID, DIRECTORY, HTTP_PORT.
start_pebble() { # LABEL
  local dir="$work/pebble-$1" listen mgmt tls_port
  mkdir -p "$dir"
  listen=$(free_port)
  mgmt=$(free_port)
  tls_port=$(free_port)
  HTTP_PORT=$(free_port)
  cat >"$dir/pebble.json" <<EOF
{ "pebble": { "listenAddress": "127.0.0.1:$listen", "managementListenAddress": "127.0.0.1:$mgmt",
  "certificate": "$tls/listener.pem", "privateKey": "$tls/listener.key",
  "httpPort": $HTTP_PORT, "tlsPort": $tls_port, "ocspResponderURL": "",
  "externalAccountBindingRequired": false } }
EOF
  PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$dir/pebble.json" -strict=false -dnsserver "127.0.0.1:$dns_port" \
    >"$dir/pebble.log" 2>&1 &
  PEBBLE_PID=$!
  pids+=("$PEBBLE_PID")
  wait_port "$listen" "$PEBBLE_PID" "$dir/pebble.log"
  DIRECTORY="https://127.0.0.1:$listen/dir"
}

stop_pebble() {
  kill "$PEBBLE_PID" 2>/dev/null || true
  wait "$PEBBLE_PID" 2>/dev/null || true
}

names=()
for i in $(seq 1 "$NAMES"); do names+=("n$i.example.test"); done

# Results: label|issued|wall_ns|pebble_cpu_ms
results=()

record() { # LABEL ISSUED START_NS END_NS CPU_BEFORE CPU_AFTER
  results+=("$1|$2|$(($4 - $3))|$(($6 - $5))")
  printf '  %-34s %3d/%d certificates in %s s (Pebble CPU %d ms)\n' \
    "$1" "$2" "$NAMES" "$(secs $(($4 - $3)))" $(($6 - $5)) >&2
}

secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }

# --- contenders -----------------------------------------------------------------------------
#
# Each run function takes an attempt label and returns 3 when its client hit the watchdog: that
# has only been seen when Pebble deadlocked (Debian's 2.4.0 can, under concurrent requests, in
# FindValidAuthorization). Pebble then gets SIGQUIT (its goroutine dump lands in its log) and
# the run is repeated on a fresh Pebble; the report counts these.

WATCHDOG=${WATCHDOG:-60} # seconds; overridable from the environment
deadlocks=0

pebble_deadlocked() { # WHAT
  echo "  $1 stalled for ${WATCHDOG}s: Pebble deadlocked? goroutine dump in $work/pebble-*/pebble.log (--keep keeps it); retrying on a fresh Pebble" >&2
  kill -QUIT "$PEBBLE_PID" 2>/dev/null || true
  wait "$PEBBLE_PID" 2>/dev/null || true
}

with_retries() { # FUNCTION ARG
  local try rc
  for try in 1 2 3; do
    rc=0
    "$1" "$2" "$try" || rc=$?
    [ "$rc" = 3 ] || return "$rc"
    deadlocks=$((deadlocks + 1))
  done
  echo "giving up: Pebble deadlocked three times in a row" >&2
  return 1
}

run_certform() { # RUN TRY
  local label="certform-$1-$2" dir start end before after issued name rc=0
  dir="$work/$label"
  start_pebble "$label"
  mkdir -p "$dir"
  {
    printf '[state]\nrepo = "state"\nkeys_dir = "keys"\n\n'
    printf '[ca.pebble]\nkind = "acme"\ndirectory = "%s"\ncontact = ["a@example.com"]\nca_bundle = "%s"\n' \
      "$DIRECTORY" "$tls/ca.pem"
    for name in "${names[@]}"; do
      printf '\n[certificate.%s]\nca = "pebble"\ncommon_name = "%s"\n' "${name%%.*}" "$name"
      printf 'dcv = { method = "http", listen = "127.0.0.1:%s" }\n' "$HTTP_PORT"
      printf 'deploy = [{ kind = "files", dir = "out/%s" }]\n' "${name%%.*}"
    done
  } >"$dir/certform.toml"
  before=$(cpu_ms "$PEBBLE_PID")
  start=$(now_ns)
  timeout "$WATCHDOG" "$certform" apply -c "$dir" --auto-approve --parallelism "$PARALLELISM" \
    >"$dir/apply.log" 2>&1 || rc=$?
  end=$(now_ns)
  if [ "$rc" = 124 ]; then
    pebble_deadlocked "certform apply"
    return 3
  elif [ "$rc" != 0 ]; then
    echo "certform apply failed (exit $rc); last lines of $dir/apply.log:" >&2
    tail -20 "$dir/apply.log" >&2
  fi
  after=$(cpu_ms "$PEBBLE_PID")
  issued=$(find "$dir/out" -name cert.pem 2>/dev/null | wc -l)
  stop_pebble
  record "certform apply --parallelism $PARALLELISM" "$issued" "$start" "$end" "$before" "$after"
}

# One lego process: WORKDIR DIRECTORY HTTP_PORT NAME. Leaves WORKDIR/stalled when the watchdog
# stopped it.
lego_one() {
  local rc=0
  LEGO_CA_CERTIFICATES="$tls/ca.pem" timeout "$WATCHDOG" lego --server "$2" --accept-tos \
    --email a@example.com --http --http.port "127.0.0.1:$3" --path "$1/lego" -d "$4" run \
    >>"$1/log/$4.log" 2>&1 || rc=$?
  if [ "$rc" = 124 ]; then touch "$1/stalled"; fi
  return "$rc"
}

run_lego_sequential() { # _ TRY
  local dir="$work/lego-seq-$2" start end before after issued name
  start_pebble "lego-seq-$2"
  mkdir -p "$dir/log"
  before=$(cpu_ms "$PEBBLE_PID")
  start=$(now_ns)
  for name in "${names[@]}"; do
    lego_one "$dir" "$DIRECTORY" "$HTTP_PORT" "$name" || echo "lego failed for $name (log $dir/log/$name.log)" >&2
    if [ -e "$dir/stalled" ]; then
      pebble_deadlocked "lego"
      return 3
    fi
  done
  end=$(now_ns)
  after=$(cpu_ms "$PEBBLE_PID")
  issued=$(find "$dir/lego/certificates" -name '*.example.test.crt' ! -name '*.issuer.crt' 2>/dev/null | wc -l)
  stop_pebble
  record "lego, one process per name" "$issued" "$start" "$end" "$before" "$after"
}

run_lego_parallel() { # _ TRY
  local dir="$work/lego-par-$2" start end before after issued i
  start_pebble "lego-par-$2"
  mkdir -p "$dir"
  # Each process runs its own HTTP-01 server; Pebble (always-valid) does not fetch it, so each
  # gets its own free port instead of fighting over Pebble's httpPort. Each name keeps its own
  # --path: lego's account files are not safe to create from 30 processes at once.
  : >"$dir/jobs"
  for i in "${!names[@]}"; do
    printf '%s %s\n' "${names[$i]}" "$(free_port)" >>"$dir/jobs"
  done
  export -f lego_one
  export tls WATCHDOG
  before=$(cpu_ms "$PEBBLE_PID")
  start=$(now_ns)
  # bash -c args: $0 work dir, $1 directory URL, then from each line $2 name, $3 port.
  # shellcheck disable=SC2016
  xargs -P "$LEGO_PARALLEL" -L 1 bash -c \
    'mkdir -p "$0/$2/log" && lego_one "$0/$2" "$1" "$3" "$2" || echo "lego failed for $2" >&2' \
    "$dir" "$DIRECTORY" <"$dir/jobs" || true
  end=$(now_ns)
  if compgen -G "$dir/*/stalled" >/dev/null; then
    pebble_deadlocked "lego"
    return 3
  fi
  after=$(cpu_ms "$PEBBLE_PID")
  issued=$(find "$dir" -path '*/certificates/*.example.test.crt' ! -name '*.issuer.crt' 2>/dev/null | wc -l)
  stop_pebble
  record "lego, $LEGO_PARALLEL processes in parallel" "$issued" "$start" "$end" "$before" "$after"
}

run_certbot() { # _ TRY
  local dir="$work/certbot-$2" start end before after issued name rc
  start_pebble "certbot-$2"
  mkdir -p "$dir/log"
  before=$(cpu_ms "$PEBBLE_PID")
  start=$(now_ns)
  for name in "${names[@]}"; do
    rc=0
    REQUESTS_CA_BUNDLE="$tls/ca.pem" timeout "$WATCHDOG" certbot certonly --standalone \
      --http-01-port "$HTTP_PORT" --http-01-address 127.0.0.1 --server "$DIRECTORY" \
      --non-interactive --agree-tos --register-unsafely-without-email \
      --config-dir "$dir/c" --work-dir "$dir/w" --logs-dir "$dir/l" -d "$name" \
      >>"$dir/log/$name.log" 2>&1 || rc=$?
    if [ "$rc" = 124 ]; then
      pebble_deadlocked "certbot"
      return 3
    elif [ "$rc" != 0 ]; then
      echo "certbot failed for $name (log $dir/log/$name.log)" >&2
    fi
  done
  end=$(now_ns)
  after=$(cpu_ms "$PEBBLE_PID")
  issued=$(find "$dir/c/live" -name cert.pem 2>/dev/null | wc -l)
  stop_pebble
  record "certbot, one process per name" "$issued" "$start" "$end" "$before" "$after"
}

echo "issuing $NAMES certificates per contender, a fresh Pebble each ..." >&2
for run in $(seq 1 "$CERTFORM_RUNS"); do with_retries run_certform "$run"; done
if [ "$PEERS" = 1 ]; then
  with_retries run_lego_sequential -
  with_retries run_lego_parallel -
fi
if [ "$CERTBOT" = yes ]; then with_retries run_certbot -; fi

# --- report ---------------------------------------------------------------------------------

# certform: the median run (by wall time).
certform_rows=()
other_rows=()
for row in "${results[@]}"; do
  case "$row" in certform*) certform_rows+=("$row") ;; *) other_rows+=("$row") ;; esac
done
mapfile -t sorted < <(printf '%s\n' "${certform_rows[@]}" | sort -t'|' -k3,3n)
median=${sorted[$(((${#sorted[@]} - 1) / 2))]}
all_walls=$(for row in "${certform_rows[@]}"; do IFS='|' read -r _ _ ns _ <<<"$row"; secs "$ns"; echo; done | paste -sd' ')

wall_of() { IFS='|' read -r _ _ ns _ <<<"$1"; echo "$ns"; }
issued_of() { IFS='|' read -r _ issued _ _ <<<"$1"; echo "$issued"; }

echo
echo "ACME issuance, $NAMES names (n1..n$NAMES.example.test, one certificate each, ECDSA P-256)"
echo "Pebble $(dpkg-query -W -f='${Version}' pebble 2>/dev/null || echo '?'): always-valid, NOSLEEP, NONCEREJECT=0, AUTHZREUSE=0, a fresh Pebble per run; $(nproc) CPUs"
echo "lego $(dpkg-query -W -f='${Version}' lego 2>/dev/null || echo '?')$([ "$CERTBOT" = yes ] && echo ", certbot $(dpkg-query -W -f='${Version}' certbot 2>/dev/null || echo '?')")"
echo
printf '%-50s %8s %9s %9s %16s\n' contender issued "wall (s)" "certs/s" "Pebble CPU (ms)"
for row in "$median" "${other_rows[@]+"${other_rows[@]}"}"; do
  IFS='|' read -r label issued ns cpu <<<"$row"
  [ "$row" = "$median" ] && label="$label (median of $CERTFORM_RUNS)"
  printf '%-50s %5d/%-3d %9s %9s %16d\n' "$label" "$issued" "$NAMES" "$(secs "$ns")" \
    "$(awk -v n="$issued" -v ns="$ns" 'BEGIN { printf "%.1f", n / (ns / 1e9) }')" "$cpu"
done
echo "certform runs (s): $all_walls"
if [ "$deadlocks" -gt 0 ]; then
  echo "Pebble deadlocks (runs repeated on a fresh Pebble): $deadlocks"
fi
echo

cf_ns=$(wall_of "$median")
cf_issued=$(issued_of "$median")
if [ "$PEERS" = 0 ]; then
  [ "$cf_issued" -eq "$NAMES" ]
  exit
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
lego_seq_ns=$(wall_of "${other_rows[0]}")
lego_par_ns=$(wall_of "${other_rows[1]}")
printf '%-44s %sx faster\n' "certform vs lego, one process per name:" "$(ratio "$lego_seq_ns" "$cf_ns")"
printf '%-44s %sx faster\n' "certform vs lego, $LEGO_PARALLEL processes in parallel:" \
  "$(ratio "$lego_par_ns" "$cf_ns")"
if [ "$CERTBOT" = yes ]; then
  printf '%-44s %sx faster\n' "certform vs certbot, one process per name:" \
    "$(ratio "$(wall_of "${other_rows[2]}")" "$cf_ns")"
fi
echo

verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
all_issued=$([ "$cf_issued" -eq "$NAMES" ] && echo 1 || echo 0)
goal_wall=$(awk -v ns="$cf_ns" 'BEGIN { print (ns <= 2e9) ? 1 : 0 }')
goal_seq=$(awk -v a="$lego_seq_ns" -v b="$cf_ns" 'BEGIN { print (a >= 10 * b) ? 1 : 0 }')
goal_par=$(awk -v a="$lego_par_ns" -v b="$cf_ns" 'BEGIN { print (b < a) ? 1 : 0 }')
printf 'goal: %-44s %s\n' "certform issues all $NAMES" "$(verdict "$all_issued")" \
  "certform's $NAMES in <= 2 s wall ($(secs "$cf_ns") s)" "$(verdict "$goal_wall")" \
  ">= 10x faster than lego one-by-one" "$(verdict "$goal_seq")" \
  "faster than $LEGO_PARALLEL parallel lego processes" "$(verdict "$goal_par")"
[ "$all_issued$goal_wall$goal_seq$goal_par" = 1111 ]
