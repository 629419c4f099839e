#!/usr/bin/env bash
# Installs and starts what `make run` and `make test` need on a Debian/Ubuntu machine, as root
# or through sudo. Idempotent: when everything is present it only checks (about a second).
#
#   - Debian packages (apt-get update once, only when one is missing)
#   - dockerd, started in the background when the Docker Engine does not answer
#   - the Temporal CLI (dev server), the workflowcheck analyzer, Pebble and versitygw, built
#     into ./bin with `go install` from the Go module proxy
#
# Environment: SKIP_APT=1 skips the package step; SKIP_DOCKER=1 skips starting dockerd.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=$ROOT/bin
DATA=$ROOT/.data

APT_PACKAGES=(docker.io postgresql nginx git debootstrap busybox-static ca-certificates curl docker-registry shellcheck)

# Go tools built into ./bin: "binary module-path version". A tool is rebuilt when its binary is
# missing or was built from another module version (read with `go version -m`).
GO_TOOLS=(
	"temporal github.com/temporalio/cli/cmd/temporal v1.5.1"
	# v0.6.0 is the newest the module proxy serves; it builds and runs with Go 1.26.
	"workflowcheck go.temporal.io/sdk/contrib/tools/workflowcheck v0.6.0"
	# make test's runner: go test -json, one line per package, the failures, and the count.
	"gotestsum gotest.tools/gotestsum v1.13.0"
	# The ACME CA of `make run` and `make test` (no real CA is reachable): Let's Encrypt's
	# test server, and its DNS server answering 127.0.0.1 for every name.
	"pebble github.com/letsencrypt/pebble/v2/cmd/pebble v2.10.1"
	"pebble-challtestsrv github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv v2.10.1"
	# The S3-compatible server of `make test` (the S3 backup store's e2e tests and unit tests):
	# the S3 API over a directory (its posix backend), about a minute to build.
	"versitygw github.com/versity/versitygw/cmd/versitygw v1.8.0"
)

DOCKER_START_TIMEOUT=${DOCKER_START_TIMEOUT:-90}

SCRIPT_NAME=deps
# shellcheck source=scripts/lib.sh
source scripts/lib.sh # (the script has cd-ed to the repository root)

# --- Go -----------------------------------------------------------------------------------
# `sudo make ...` resets PATH; the usual Go install locations are added back.
if ! command -v go >/dev/null 2>&1; then
	for d in /usr/local/go/bin /usr/lib/go/bin "$HOME/go/bin" "$HOME/.local/go/bin"; do
		if [ -x "$d/go" ]; then
			PATH=$d:$PATH
			export PATH
			break
		fi
	done
fi
command -v go >/dev/null 2>&1 || die "Go is not installed (the module needs $(sed -n 's/^go //p' go.mod)): install it from https://go.dev/dl/ and put it on PATH"

mkdir -p "$BIN" "$DATA"

# --- Debian packages ----------------------------------------------------------------------
installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}
if [ "${SKIP_APT:-}" != 1 ]; then
	command -v dpkg-query >/dev/null 2>&1 || die "not a Debian/Ubuntu machine (no dpkg-query): install ${APT_PACKAGES[*]} by hand and rerun with SKIP_APT=1"
	missing=()
	for p in "${APT_PACKAGES[@]}"; do
		installed "$p" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing Debian packages: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
		as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get -o DPkg::Lock::Timeout=300 \
			install -y -qq "${missing[@]}"
	fi
fi

# --- Docker Engine ------------------------------------------------------------------------
docker_answers() {
	# `docker version` fails unless the daemon answers (`docker info` can exit 0 without one).
	# Not root: try as ourselves (docker group), then through sudo without a password prompt.
	timeout 15 docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1 ||
		{ [ ${#SUDO[@]} -gt 0 ] && timeout 15 sudo -n docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; }
}
start_dockerd() {
	command -v dockerd >/dev/null 2>&1 || die "dockerd not found (package docker.io)"
	log "starting dockerd (log: .data/dockerd.log)"
	# Ask for sudo's password now, in the foreground, not from the background job.
	if [ ${#SUDO[@]} -gt 0 ]; then sudo -v; fi
	# setsid + nohup: the daemon outlives this script and make; it is not stopped by
	# `make clean` (stop it with: kill \$(cat /var/run/docker.pid)).
	as_root setsid nohup dockerd >>"$DATA/dockerd.log" 2>&1 </dev/null &
	disown || true
	dockerd_started=$SECONDS
}
if [ "${SKIP_DOCKER:-}" != 1 ]; then
	command -v docker >/dev/null 2>&1 || die "docker client not found (package docker.io)"
	if ! docker_answers; then
		dockerd_started=-100
		if pgrep -x dockerd >/dev/null 2>&1; then
			log "dockerd is running but not answering yet; waiting"
		else
			start_dockerd
		fi
		deadline=$((SECONDS + DOCKER_START_TIMEOUT))
		until docker_answers; do
			# A dockerd that was shutting down when we looked is gone now: start one.
			if ! pgrep -x dockerd >/dev/null 2>&1 && [ $((SECONDS - dockerd_started)) -ge 5 ]; then
				log "dockerd is not running (it was stopping)"
				start_dockerd
				deadline=$((SECONDS + DOCKER_START_TIMEOUT))
			fi
			if [ $SECONDS -ge $deadline ]; then
				tail -n 20 "$DATA/dockerd.log" >&2 2>/dev/null || true
				die "the Docker Engine did not answer within ${DOCKER_START_TIMEOUT}s (see .data/dockerd.log)"
			fi
			sleep 0.5
		done
		log "dockerd is up"
	fi
	if [ "$(id -u)" -ne 0 ] && ! timeout 15 docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; then
		log "warning: $(id -un) cannot reach the Docker socket: run as root (sudo make ...) or join the docker group"
	fi
fi

# --- Go tools into ./bin ------------------------------------------------------------------
for entry in "${GO_TOOLS[@]}"; do
	read -r name module version <<<"$entry"
	have=""
	if [ -x "$BIN/$name" ]; then
		have=$(go version -m "$BIN/$name" 2>/dev/null | awk '$1 == "mod" { print $3; exit }')
	fi
	if [ "$have" != "$version" ]; then
		log "installing $name $version into bin/ (go install $module@$version; a few minutes on a cold module cache)"
		if ! GOBIN=$BIN go install "$module@$version"; then
			if [ "$name" = workflowcheck ]; then
				log "warning: workflowcheck could not be built; make lint skips it"
				continue
			fi
			die "go install $module@$version failed"
		fi
	fi
done

# --- npm tools into .data/ ----------------------------------------------------------------
# Redocly's CLI lints the API's OpenAPI document (apiserver's TestOpenAPIDocumentPassesRedocly).
REDOCLY_VERSION=2.77.0
if command -v npm >/dev/null 2>&1; then
	if [ "$(cat "$DATA/redocly/.version" 2>/dev/null)" != "$REDOCLY_VERSION" ]; then
		log "installing Redocly CLI $REDOCLY_VERSION into .data/redocly (npm)"
		mkdir -p "$DATA/redocly"
		if npm install --prefix "$DATA/redocly" --no-audit --no-fund --silent "@redocly/cli@$REDOCLY_VERSION" >"$DATA/redocly/npm.log" 2>&1; then
			echo "$REDOCLY_VERSION" >"$DATA/redocly/.version"
		else
			log "warning: npm could not install @redocly/cli (see .data/redocly/npm.log); the OpenAPI lint is skipped"
		fi
	fi
else
	log "warning: npm not found: the OpenAPI lint is skipped (apt-get install npm)"
fi

log "ok"
