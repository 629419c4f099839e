#!/usr/bin/env bash
# Builds, only when they are missing, local equivalents of the official images SkyPanel's
# buildpacks build and run apps on, under the names the seeded runtimes use:
#
#   node:20-bookworm-slim       Debian bookworm's nodejs (18.x, not 20) + npm, user node (uid 1000)
#   python:3.11-slim-bookworm   Debian bookworm's python3 (3.11) + pip, python -> python3
#   php:8.2-apache-bookworm     Debian bookworm's php 8.2 + Apache (mod_php, prefork);
#                               `apache2-foreground` listens on $PORT and runs as any uid
#
# No container registry is needed: the Debian base is made with debootstrap from the Debian
# mirror this machine's apt already uses and imported as skypanel/debian:bookworm, then each
# runtime image is built FROM it with Debian's packages (one apt-get per image). Every image is
# labelled skypanel.base=true, so app cleanup never removes it.
#
# Idempotent: an image that exists (whatever built it, the official one included) is kept, so a
# second run takes a few seconds. As root, or with sudo for debootstrap.
#
# Environment:
#   SKYPANEL_DEBIAN_IMAGE   base image name            (skypanel/debian:bookworm)
#   SKYPANEL_NODE_IMAGE     Node.js runtime image      (node:20-bookworm-slim)
#   SKYPANEL_PYTHON_IMAGE   Python runtime image       (python:3.11-slim-bookworm)
#   SKYPANEL_PHP_IMAGE      PHP runtime image          (php:8.2-apache-bookworm)
#   SKYPANEL_DEBIAN_MIRROR  Debian mirror URL          (read from /etc/apt/sources*)
#   SKYPANEL_DEBIAN_SECURITY_MIRROR  security mirror   (read from /etc/apt/sources*, optional)
#   REBUILD=1 (or --rebuild) builds every image again, the Debian base included.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUITE=bookworm
DEBIAN_IMAGE=${SKYPANEL_DEBIAN_IMAGE:-skypanel/debian:bookworm}
NODE_IMAGE=${SKYPANEL_NODE_IMAGE:-node:20-bookworm-slim}
PYTHON_IMAGE=${SKYPANEL_PYTHON_IMAGE:-python:3.11-slim-bookworm}
PHP_IMAGE=${SKYPANEL_PHP_IMAGE:-php:8.2-apache-bookworm}
REBUILD=${REBUILD:-}
if [ "${1:-}" = --rebuild ]; then
	REBUILD=1
fi

START=$SECONDS
SCRIPT_NAME=base-images
# shellcheck source=scripts/lib.sh
source scripts/lib.sh # (the script has cd-ed to the repository root)
log() { printf 'base-images: [%3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
docker_() {
	if [ "$(id -u)" -ne 0 ] && ! docker version >/dev/null 2>&1 && [ ${#SUDO[@]} -gt 0 ]; then
		"${SUDO[@]}" docker "$@"
	else
		docker "$@"
	fi
}

command -v docker >/dev/null 2>&1 || die "docker is not installed (make deps)"
docker_ version --format '{{.Server.APIVersion}}' >/dev/null 2>&1 || die "the Docker Engine does not answer (make deps starts it)"

have_image() { [ -z "$REBUILD" ] && docker_ image inspect --format '{{.Id}}' "$1" >/dev/null 2>&1; }

# One run at a time: a second `make run` while the first builds waits, then finds the images.
mkdir -p .data
exec 9>.data/base-images.lock
if ! flock -n 9; then
	log "another base-images run is in progress; waiting for it"
	flock 9
fi

if have_image "$NODE_IMAGE" && have_image "$PYTHON_IMAGE" && have_image "$PHP_IMAGE"; then
	log "ok: $NODE_IMAGE, $PYTHON_IMAGE, $PHP_IMAGE are present"
	exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/skypanel-base-images.XXXXXX")
cleanup() { as_root rm -rf --one-file-system "$WORK" 2>/dev/null || true; }
trap cleanup EXIT

# --- the Debian mirror apt on this machine uses --------------------------------------------
# Prints "URI SUITE" for every Debian archive entry of bookworm, bookworm-updates and
# bookworm-security in the one-line (.list) and deb822 (.sources) formats.
apt_entries() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk -v suite="$SUITE" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				uri = $(i); s = $(i + 1)
				if (s == suite || s == suite "-updates" || s == suite "-security" || s == suite "/updates") print uri, s
			}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk -v suite="$SUITE" '
			function flush(   n, m, i, j, u, s) {
				if (types ~ /(^| )deb( |$)/ && enabled != "no") {
					n = split(uris, u, " "); m = split(suites, s, " ")
					for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
						if (s[j] == suite || s[j] == suite "-updates" || s[j] == suite "-security") print u[i], s[j]
				}
				types = ""; uris = ""; suites = ""; enabled = ""
			}
			/^[ \t]*$/ { flush(); next }
			/^#/ { next }
			tolower($1) == "types:"   { $1 = ""; types = $0 }
			tolower($1) == "uris:"    { $1 = ""; uris = $0 }
			tolower($1) == "suites:"  { $1 = ""; suites = $0 }
			tolower($1) == "enabled:" { enabled = tolower($2) }
			END { flush() }' "$f"
	done
}
ENTRIES=$(apt_entries | sed 's#/*  *# #; s#/$##' | sort -u)
MIRROR=${SKYPANEL_DEBIAN_MIRROR:-$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$ENTRIES")}
SECURITY_MIRROR=${SKYPANEL_DEBIAN_SECURITY_MIRROR:-$(awk -v s="$SUITE" '$2 == s "-security" || $2 == s "/updates" { print $1; exit }' <<<"$ENTRIES")}
HAS_UPDATES=$(awk -v s="$SUITE" '$2 == s "-updates" { print "yes"; exit }' <<<"$ENTRIES")
[ -n "$MIRROR" ] || die "no Debian $SUITE mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/*: set SKYPANEL_DEBIAN_MIRROR"

# --- the Debian base: debootstrap + docker import --------------------------------------------
if have_image "$DEBIAN_IMAGE"; then
	log "reusing $DEBIAN_IMAGE"
else
	command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (make deps)"
	ROOTFS=$WORK/rootfs
	log "debootstrap --variant=minbase $SUITE from $MIRROR (about a minute)"
	if ! as_root debootstrap --variant=minbase --include=ca-certificates --components=main \
		"$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
		tail -n 30 "$WORK/debootstrap.log" >&2
		[ -r "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
		die "debootstrap failed"
	fi
	# What the official Debian images do: the archive's suites, no service starts inside an
	# image build, no documentation, no apt caches.
	{
		echo "deb $MIRROR $SUITE main"
		if [ -n "$HAS_UPDATES" ]; then echo "deb $MIRROR $SUITE-updates main"; fi
		if [ -n "$SECURITY_MIRROR" ]; then echo "deb $SECURITY_MIRROR $SUITE-security main"; fi
	} | as_root tee "$ROOTFS/etc/apt/sources.list" >/dev/null
	printf '#!/bin/sh\n# no service starts while an image is built\nexit 101\n' | as_root tee "$ROOTFS/usr/sbin/policy-rc.d" >/dev/null
	as_root chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
	printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
		'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
		'path-include /usr/share/locale/locale.alias' | as_root tee "$ROOTFS/etc/dpkg/dpkg.cfg.d/skypanel-nodoc" >/dev/null
	printf '%s\n' 'APT::Install-Recommends "false";' 'APT::Install-Suggests "false";' \
		'Acquire::Languages "none";' | as_root tee "$ROOTFS/etc/apt/apt.conf.d/90skypanel" >/dev/null
	# Certificate authorities this machine trusts beyond Debian's own (a proxy's, a company's)
	# are trusted in the images too, so apt, npm and pip reach what the host reaches.
	HOST_CA_BUNDLE=${SKYPANEL_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
	if [ -r "$HOST_CA_BUNDLE" ] && [ -r "$ROOTFS/etc/ssl/certs/ca-certificates.crt" ]; then
		# Prints each certificate of the host's bundle the image's bundle lacks into its own file.
		as_root awk -v dir="$ROOTFS/usr/local/share/ca-certificates" -v image="$ROOTFS/etc/ssl/certs/ca-certificates.crt" '
			{ sub(/\r$/, "") }
			/-----BEGIN CERTIFICATE-----/ { inside = 1; block = "" }
			inside { block = block $0 "\n" }
			/-----END CERTIFICATE-----/ {
				inside = 0
				if (FILENAME == image) { known[block] = 1 }
				else if (!(block in known) && !(block in written)) {
					written[block] = 1; n++
					file = sprintf("%s/skypanel-host-%d.crt", dir, n)
					printf "%s", block > file; close(file)
				}
			}
			END { print n + 0 }' "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$HOST_CA_BUNDLE" >"$WORK/extra-cas"
		if [ "$(cat "$WORK/extra-cas")" -gt 0 ]; then
			log "trusting $(cat "$WORK/extra-cas") certificate authorities of this machine that Debian does not ship"
			as_root chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the Debian base"
		fi
	fi
	as_root rm -rf "$ROOTFS/var/lib/apt/lists/"* "$ROOTFS/var/cache/apt/"*.bin "$ROOTFS/var/cache/apt/archives/"*.deb \
		"$ROOTFS/usr/share/man/"* "$ROOTFS/usr/share/info/"* "$ROOTFS/var/log/"*.log
	log "docker import $DEBIAN_IMAGE"
	as_root tar --numeric-owner -C "$ROOTFS" -c . | docker_ import \
		--change 'LABEL skypanel.base=true' \
		--change "LABEL org.opencontainers.image.description=\"Debian $SUITE, debootstrap minbase from $MIRROR\"" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'CMD ["bash"]' \
		- "$DEBIAN_IMAGE" >/dev/null
	as_root rm -rf --one-file-system "$ROOTFS"
fi

# --- the runtime images --------------------------------------------------------------------
# build NAME DIR: builds DIR/Dockerfile (FROM the Debian base) into NAME in the background (the
# three builds mostly wait on the mirror, so they run side by side); finish waits for them all.
PIDS=()
NAMES=()
DIRS=()
build() {
	local name=$1 dir=$2
	log "docker build $name (log: $dir/build.log)"
	docker_ build --force-rm --build-arg "BASE=$DEBIAN_IMAGE" --label skypanel.base=true -t "$name" "$dir" >"$dir/build.log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
	DIRS+=("$dir")
}
finish() {
	local i failed=0
	for i in "${!PIDS[@]}"; do
		if wait "${PIDS[$i]}"; then
			log "built ${NAMES[$i]}"
		else
			failed=1
			log "docker build ${NAMES[$i]} failed:"
			tail -n 40 "${DIRS[$i]}/build.log" >&2
		fi
	done
	[ "$failed" -eq 0 ] || die "could not build every base image"
}

# apt-get in one RUN: update, install without recommends, remove the lists.
APT_INSTALL='export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq --no-install-recommends'
APT_CLEAN='apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log'

if ! have_image "$NODE_IMAGE"; then
	mkdir -p "$WORK/node"
	cat >"$WORK/node/Dockerfile" <<EOF
ARG BASE
FROM \$BASE
# Debian bookworm ships Node.js 18 (not 20) and npm 9: the same commands as the official image.
RUN set -eu; $APT_INSTALL nodejs npm >/dev/null; $APT_CLEAN; \\
    groupadd --gid 1000 node; useradd --uid 1000 --gid node --shell /bin/bash --create-home node; \\
    node --version; npm --version
# Node.js reads its own root certificates; these add the system's (and the machine's own CAs).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.description="Local stand-in for node:20-bookworm-slim: Debian bookworm nodejs 18 + npm 9"
CMD ["node"]
EOF
	build "$NODE_IMAGE" "$WORK/node"
fi

if ! have_image "$PYTHON_IMAGE"; then
	mkdir -p "$WORK/python"
	# pip is there for indexes the node can reach (PyPI may not be); the externally-managed
	# marker is removed as the official image has none: the image is the app's environment.
	cat >"$WORK/python/Dockerfile" <<EOF
ARG BASE
FROM \$BASE
RUN set -eu; $APT_INSTALL python3 python3-pip python-is-python3 >/dev/null; $APT_CLEAN; \\
    rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED; \\
    python3 --version; python3 -m pip --version
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
LABEL org.opencontainers.image.description="Local stand-in for python:3.11-slim-bookworm: Debian bookworm python3 3.11 + pip"
CMD ["python3"]
EOF
	build "$PYTHON_IMAGE" "$WORK/python"
fi

if ! have_image "$PHP_IMAGE"; then
	mkdir -p "$WORK/php"
	# Like the official image's apache2-foreground: Apache's own environment, then the server
	# in the foreground. Its config reads the port from $PORT (Apache expands ${PORT} itself).
	cat >"$WORK/php/apache2-foreground" <<'EOF'
#!/bin/sh
set -e
# Apache's run, lock and log directories, as apache2ctl would set them.
. /etc/apache2/envvars
: "${PORT:=8080}"
export PORT
rm -f "$APACHE_PID_FILE"
exec apache2 -DFOREGROUND "$@"
EOF
	cat >"$WORK/php/skypanel-php.conf" <<'EOF'
# As the official image's docker-php.conf: PHP first, .htaccess allowed, no listings.
ServerName localhost
<FilesMatch \.php$>
	SetHandler application/x-httpd-php
</FilesMatch>
DirectoryIndex disabled
DirectoryIndex index.php index.html
<Directory /var/www/>
	Options -Indexes
	AllowOverride All
</Directory>
EOF
	cat >"$WORK/php/Dockerfile" <<EOF
ARG BASE
FROM \$BASE
RUN set -e; $APT_INSTALL apache2 libapache2-mod-php >/dev/null; $APT_CLEAN; \\
    a2dismod -q -f mpm_event >/dev/null 2>&1 || true; \\
    a2enmod -q mpm_prefork rewrite >/dev/null; a2enmod -q php8.2 >/dev/null; \\
    sed -ri 's/^Listen 80\$/Listen \${PORT}/' /etc/apache2/ports.conf; \\
    sed -ri 's/<VirtualHost \*:80>/<VirtualHost *:\${PORT}>/' /etc/apache2/sites-available/000-default.conf; \\
    . /etc/apache2/envvars; \\
    for d in "\$APACHE_LOCK_DIR" "\$APACHE_RUN_DIR" "\$APACHE_LOG_DIR"; do mkdir -p "\$d"; chmod 1777 "\$d"; done; \\
    ln -sfT /dev/stderr "\$APACHE_LOG_DIR/error.log"; \\
    ln -sfT /dev/stdout "\$APACHE_LOG_DIR/access.log"; \\
    ln -sfT /dev/stdout "\$APACHE_LOG_DIR/other_vhosts_access.log"; \\
    rm -f /var/www/html/index.html; \\
    php --version | head -n 1; apache2 -v | head -n 1
COPY skypanel-php.conf /etc/apache2/conf-enabled/skypanel-php.conf
COPY apache2-foreground /usr/local/bin/apache2-foreground
RUN chmod 0755 /usr/local/bin/apache2-foreground && chmod 0644 /etc/apache2/conf-enabled/skypanel-php.conf
ENV PORT=8080
WORKDIR /var/www/html
STOPSIGNAL SIGWINCH
LABEL org.opencontainers.image.description="Local stand-in for php:8.2-apache-bookworm: Debian bookworm php 8.2 + Apache mod_php on \\\$PORT"
CMD ["apache2-foreground"]
EOF
	build "$PHP_IMAGE" "$WORK/php"
fi

finish
log "ok: $NODE_IMAGE, $PYTHON_IMAGE, $PHP_IMAGE"
