#!/usr/bin/env bash
# Start Pebble (Let's Encrypt's ACME test server) for examples/acme-pebble, with
# pebble-challtestsrv as its DNS server answering every name with 127.0.0.1, so Pebble
# reaches certform's HTTP-01 responder on 127.0.0.1:5002. Stops both on Ctrl-C.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir="$here/pebble"
mkdir -p "$dir"
command -v pebble >/dev/null || { echo "Pebble is not installed: apt-get install -y pebble" >&2; exit 1; }

# Pebble ships no certificate for its own HTTPS listener: make a throwaway CA and leaf.
if [ ! -f "$dir/listener.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=certform example Pebble listener CA" \
    -keyout "$dir/listener-ca.key" -out "$dir/listener-ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$dir/listener.key" -out "$dir/listener.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' > "$dir/listener.ext"
  openssl x509 -req -in "$dir/listener.csr" -CA "$dir/listener-ca.pem" -CAkey "$dir/listener-ca.key" \
    -CAcreateserial -days 30 -extfile "$dir/listener.ext" -out "$dir/listener.pem" 2>/dev/null
fi

cat > "$dir/pebble.json" <<EOF
{ "pebble": { "listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$dir/listener.pem", "privateKey": "$dir/listener.key",
  "httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "",
  "externalAccountBindingRequired": false } }
EOF

pebble-challtestsrv -management 127.0.0.1:8055 -dns01 127.0.0.1:8053 -http01 "" -https01 "" \
  -tlsalpn01 "" -defaultIPv4 127.0.0.1 -defaultIPv6 "" > "$dir/challtestsrv.log" 2>&1 &
challtestsrv=$!
trap 'kill $challtestsrv 2>/dev/null' EXIT
echo "Pebble: https://127.0.0.1:14000/dir (management https://127.0.0.1:15000); Ctrl-C stops it"
PEBBLE_VA_NOSLEEP=1 pebble -config "$dir/pebble.json" -strict=false -dnsserver 127.0.0.1:8053
