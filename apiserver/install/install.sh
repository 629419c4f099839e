#!/usr/bin/env bash
# Installs the SkyPanel node agent on a Debian/Ubuntu machine, as root. The control plane serves
# this script with its own values filled in (GET /api/paas/agent/install-script-raw):
#
#   curl -fsSL <public url>/api/paas/agent/install-script-raw | bash -s <public url> <token> <region> <name>
#
# Steps, each safe to repeat: check the registration token with the control plane (nothing is
# installed when it is refused), download the agent and verify its SHA-256, install docker.io,
# nginx and git, write the agent's binary, environment file and systemd unit, and (re)start it.
# The agent registers itself with the token at its first start.
#
# Environment, for tests and special cases:
#   SKYPANEL_INSTALL_ROOT=<dir>      install under <dir> instead of / (no root needed)
#   SKYPANEL_INSTALL_SKIP_APT=1      do not install Debian packages
#   SKYPANEL_INSTALL_NO_SYSTEMD=1    write the unit but do not call systemctl
set -euo pipefail

# Filled in by the control plane when it serves the script.
RENDERED_API_URL='@@PUBLIC_URL@@'
GATEWAY_ADDRESS='@@GATEWAY_ADDRESS@@'
AGENT_SHA256='@@AGENT_SHA256@@'

ROOT=${SKYPANEL_INSTALL_ROOT:-}
DATA_DIR=/var/lib/skypanel-agent
BIN_PATH=/usr/local/bin/skypanel-agent
ENV_DIR=/etc/skypanel-agent
ENV_FILE=$ENV_DIR/agent.env
UNIT_FILE=/etc/systemd/system/skypanel-agent.service

say() { printf 'skypanel-install: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

if [ $# -ne 4 ]; then
	say "usage: bash -s <public url> <registration token> <region> <node name>"
	exit 2
fi
API_URL=${1%/}
TOKEN=$2
REGION=$3
NAME=$4

# Strict shapes: the values go into JSON and an environment file without escaping.
url_shape='^https?://[][A-Za-z0-9.:-]+(/[A-Za-z0-9._~/-]*)?$'
[[ $API_URL =~ $url_shape ]] || die "public url \"$API_URL\": want http(s)://host[:port][/path]"
[[ $TOKEN =~ ^[A-Za-z0-9_-]{1,200}$ ]] || die "the registration token has an unexpected shape; copy it again from the admin answer"
label='^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
[[ $REGION =~ $label ]] || die "region \"$REGION\": want a lower-case RFC 1123 label"
[[ $NAME =~ $label ]] || die "node name \"$NAME\": want a lower-case RFC 1123 label"
[ -n "$GATEWAY_ADDRESS" ] || die "this copy of the script has no node gateway address: fetch it from the control plane's install-script-raw"
[[ $AGENT_SHA256 =~ ^[0-9a-f]{64}$ ]] || die "this copy of the script has no agent checksum: fetch it from the control plane's install-script-raw"
if [ -n "$RENDERED_API_URL" ] && [ "$RENDERED_API_URL" != "$API_URL" ]; then
	say "note: the control plane calls itself $RENDERED_API_URL; the agent will use $API_URL as given"
fi
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
	die "run it as root: ... | sudo bash -s <public url> <token> <region> <name>"
fi
for tool in curl sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install -y curl coreutils)"
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. The token, checked against this node's region and name. It travels on stdin, never on a
# command line.
say "checking the registration token with $API_URL"
status=$(printf '{"registration_token":"%s","region":"%s","name":"%s"}' "$TOKEN" "$REGION" "$NAME" |
	curl -sS -o "$WORK/check.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		--data-binary @- "$API_URL/api/paas/agent/install-check") || die "cannot reach $API_URL"
if [ "$status" != 204 ]; then
	detail=$(sed -n 's/.*"detail":"\([^"]*\)".*/\1/p' "$WORK/check.json")
	die "the control plane refused the token (HTTP $status): ${detail:-$(head -c 300 "$WORK/check.json")}"
fi

# 2. The agent binary, verified before anything is installed.
say "downloading the agent"
curl -fsS -o "$WORK/skypanel-agent" "$API_URL/api/paas/agent/binary" || die "cannot download the agent from $API_URL"
actual=$(sha256sum "$WORK/skypanel-agent" | cut -d' ' -f1)
if [ "$actual" != "$AGENT_SHA256" ]; then
	die "the downloaded agent's SHA-256 is $actual, not $AGENT_SHA256: refusing to install it (fetch the script again; if it persists, the download is being tampered with)"
fi

# 3. What the agent runs: Docker for apps, nginx (its binary; the agent runs its own master)
# and git for clones.
if [ "${SKYPANEL_INSTALL_SKIP_APT:-}" != 1 ]; then
	say "installing docker.io, nginx and git"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq docker.io nginx git ca-certificates
fi

# 4. Binary, environment and unit. Each file is written beside its place and renamed over it,
# so a running agent or a half-written file is never seen.
install -d -m 0755 "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system"
install -d -m 0700 "$ROOT$ENV_DIR"
install -d -m 0711 "$ROOT$DATA_DIR"
install -m 0755 "$WORK/skypanel-agent" "$ROOT$BIN_PATH.new"
mv -f "$ROOT$BIN_PATH.new" "$ROOT$BIN_PATH"

# The token lives only here (0600): the unit reads it with EnvironmentFile=, so it is in no
# command line and no unit file. The agent gets the platform's keyring when it registers.
(
	umask 077
	cat >"$ROOT$ENV_FILE.new" <<EOF
SKYPANEL_API_URL=$API_URL
SKYPANEL_GATEWAY_ADDRESS=$GATEWAY_ADDRESS
SKYPANEL_AGENT_DATA_DIR=$DATA_DIR
SKYPANEL_REGISTRATION_TOKEN=$TOKEN
EOF
)
chmod 0600 "$ROOT$ENV_FILE.new"
if [ "$(id -u)" -eq 0 ]; then
	chown root:root "$ROOT$ENV_FILE.new"
fi
mv -f "$ROOT$ENV_FILE.new" "$ROOT$ENV_FILE"

# KillMode=process: a restart of the agent leaves its nginx master serving the apps.
cat >"$ROOT$UNIT_FILE.new" <<EOF
[Unit]
Description=SkyPanel node agent
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Type=simple
EnvironmentFile=$ENV_FILE
ExecStart=$BIN_PATH
Restart=always
RestartSec=5
KillMode=process
TimeoutStopSec=45

[Install]
WantedBy=multi-user.target
EOF
chmod 0644 "$ROOT$UNIT_FILE.new"
mv -f "$ROOT$UNIT_FILE.new" "$ROOT$UNIT_FILE"

# The token was accepted, so this machine is to become node $NAME: credentials of an earlier
# registration are kept aside, or the agent would keep being that node.
if [ -e "$ROOT$DATA_DIR/agent.json" ]; then
	aside="$DATA_DIR/agent.json.replaced-$(date +%Y%m%d%H%M%S)"
	mv -f "$ROOT$DATA_DIR/agent.json" "$ROOT$aside"
	say "kept the earlier registration as $aside"
fi

# 5. Start it. restart, not only enable --now: a repeated install must load the new binary and
# token. The distribution's nginx service would hold port 80, which the agent's nginx serves.
if [ "${SKYPANEL_INSTALL_NO_SYSTEMD:-}" = 1 ]; then
	say "installed; not starting it (SKYPANEL_INSTALL_NO_SYSTEMD=1)"
	exit 0
fi
command -v systemctl >/dev/null 2>&1 || die "systemctl is missing: this script needs systemd (or SKYPANEL_INSTALL_NO_SYSTEMD=1)"
if systemctl is-enabled --quiet nginx 2>/dev/null || systemctl is-active --quiet nginx 2>/dev/null; then
	say "disabling the distribution's nginx service: the agent runs its own nginx"
	systemctl disable --now nginx
fi
systemctl daemon-reload
systemctl enable skypanel-agent
systemctl restart skypanel-agent
say "skypanel-agent is running as node $NAME of region $REGION"
say "check it with: systemctl status skypanel-agent; journalctl -u skypanel-agent -n 100"
