#!/usr/bin/env bash
# compose-certs.sh makes the certificates docker-compose.yml mounts, under ./certs/temporal and
# ./registry/certs:
#   - a private CA for the control plane's own mutual TLS to Temporal: the frontend's
#     certificate (name "temporal") and one client certificate for the api, the worker, the Web
#     UI and the admin tools (name "skypanel-control");
#   - the registry gate's certificate for the host in SKYPANEL_REGISTRY, signed by the same CA.
#     Nodes must trust it: copy certs/temporal/ca.pem to
#     /etc/docker/certs.d/<registry host:port>/ca.crt on each node (docs/operations.md).
#
#   SKYPANEL_REGISTRY=registry.example.com:5000 scripts/compose-certs.sh
#
# Keys are written 0600. Existing files are kept: delete them to issue new ones.
set -euo pipefail

cd "$(dirname "$0")/.."
registry="${SKYPANEL_REGISTRY:-registry.example.com:5000}"
registry_host="${registry%:*}"
days="${CERT_DAYS:-825}"
tdir=certs/temporal
rdir=registry/certs
mkdir -p "$tdir" "$rdir"
umask 077

if [[ ! -f "$tdir/ca.pem" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=SkyPanel control-plane CA" -keyout "$tdir/ca.key" -out "$tdir/ca.pem" 2>/dev/null
  echo "made the CA: $tdir/ca.pem"
fi

# issue NAME OUT_PREFIX SAN EXTENDED_KEY_USAGE
issue() {
  local name="$1" out="$2" san="$3" eku="$4"
  if [[ -f "$out.pem" ]]; then
    echo "kept $out.pem"
    return
  fi
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$out.key" -out "$out.csr" 2>/dev/null
  openssl x509 -req -in "$out.csr" -CA "$tdir/ca.pem" -CAkey "$tdir/ca.key" -CAcreateserial \
    -days "$days" -out "$out.pem" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$san" "$eku") 2>/dev/null
  rm -f "$out.csr"
  echo "made $out.pem ($name)"
}

issue temporal "$tdir/temporal" "DNS:temporal,DNS:localhost,IP:127.0.0.1" "serverAuth,clientAuth"
issue skypanel-control "$tdir/client" "DNS:skypanel-control" "clientAuth"
if [[ "$registry_host" =~ ^[0-9.]+$ ]]; then
  issue "$registry_host" "$rdir/registry" "IP:$registry_host" "serverAuth"
else
  issue "$registry_host" "$rdir/registry" "DNS:$registry_host" "serverAuth"
fi
# The registry gate reads its pair as registry.crt and registry.key.
[[ -f "$rdir/registry.crt" ]] || cp "$rdir/registry.pem" "$rdir/registry.crt"
# The containers run as other users than root: the certificates must be readable to them.
chmod 0644 "$tdir"/*.pem "$rdir"/*.pem "$rdir/registry.crt"
chmod 0644 "$tdir/temporal.key" "$tdir/client.key" "$rdir/registry.key"
echo "done: docker compose up -d"
