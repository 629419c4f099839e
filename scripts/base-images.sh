#!/usr/bin/env bash
# Builds, only when they are missing, local equivalents of the official images SkyPanel's
# buildpacks build and run apps on, and of those its managed databases run on, under the names
# the seeded runtimes and database engines use:
#
#   node:20-bookworm-slim       Debian bookworm's nodejs (18.x, not 20) + npm, user node (uid 1000)
#   python:3.11-slim-bookworm   Debian bookworm's python3 (3.11) + pip, python -> python3
#   php:8.2-apache-bookworm     Debian bookworm's php 8.2 + Apache (mod_php, prefork);
#                               `apache2-foreground` listens on $PORT and runs as any uid
#   postgres:15-bookworm        Debian bookworm's postgresql-15; the official entrypoint's
#                               POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA
#   mariadb:10.11               Debian bookworm's mariadb-server (10.11); the official entrypoint's
#                               MARIADB_ROOT_PASSWORD, MARIADB_USER, MARIADB_PASSWORD,
#                               MARIADB_DATABASE, MARIADB_ROOT_HOST (and their MYSQL_* aliases)
#   redis:7-bookworm            Debian bookworm's redis-server (7.0), data in /data
#   mongo:7.0                   no MongoDB here (no Debian package, no registry): FerretDB v1.24.2
#                               (the MongoDB wire protocol, built from the Go module proxy) over
#                               a private PostgreSQL (Debian's postgresql-15) in the same container;
#                               the official entrypoint's MONGO_INITDB_ROOT_USERNAME,
#                               MONGO_INITDB_ROOT_PASSWORD, data in /data/db; plus skypanel-mongo
#                               (cmd/skypanel-mongo), the catalogue's health, dump and restore
#
# The database images run as the official ones do: started as root, their entrypoint makes the
# data and socket directories its user's and drops to that user (postgres, mysql and redis, each
# uid and gid 999 as in the official images, so a volume moves between the two) with setpriv
# where the official images use gosu; started as that user they run as it.
#
# No container registry is needed: the Debian base is made with debootstrap from the Debian
# mirror this machine's apt already uses and imported as skypanel/debian:bookworm, then each
# image is built FROM it with Debian's packages (one apt-get per image), all of them side by side
# in the background. Every image is labelled skypanel.base=true, so app cleanup never removes it.
#
# Idempotent: an image that exists (whatever built it, the official one included) is kept, so a
# second run takes a few seconds. As root, or with sudo for debootstrap.
#
# Environment:
#   SKYPANEL_DEBIAN_IMAGE   base image name            (skypanel/debian:bookworm)
#   SKYPANEL_NODE_IMAGE     Node.js runtime image      (node:20-bookworm-slim)
#   SKYPANEL_PYTHON_IMAGE   Python runtime image       (python:3.11-slim-bookworm)
#   SKYPANEL_PHP_IMAGE      PHP runtime image          (php:8.2-apache-bookworm)
#   SKYPANEL_POSTGRES_IMAGE PostgreSQL database image  (postgres:15-bookworm)
#   SKYPANEL_MARIADB_IMAGE  MariaDB database image     (mariadb:10.11)
#   SKYPANEL_REDIS_IMAGE    Redis database image       (redis:7-bookworm)
#   SKYPANEL_MONGO_IMAGE    MongoDB database image     (mongo:7.0)
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
POSTGRES_IMAGE=${SKYPANEL_POSTGRES_IMAGE:-postgres:15-bookworm}
MARIADB_IMAGE=${SKYPANEL_MARIADB_IMAGE:-mariadb:10.11}
REDIS_IMAGE=${SKYPANEL_REDIS_IMAGE:-redis:7-bookworm}
MONGO_IMAGE=${SKYPANEL_MONGO_IMAGE:-mongo:7.0}
FERRETDB_VERSION=v1.24.2
IMAGES=("$NODE_IMAGE" "$PYTHON_IMAGE" "$PHP_IMAGE" "$POSTGRES_IMAGE" "$MARIADB_IMAGE" "$REDIS_IMAGE" "$MONGO_IMAGE")
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

all_present() {
	local name
	for name in "${IMAGES[@]}"; do
		have_image "$name" || return 1
	done
}
if all_present; then
	log "ok: ${IMAGES[*]} are present"
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

# --- the runtime and database images -------------------------------------------------------
# build NAME DIR: builds DIR/Dockerfile (FROM the Debian base) into NAME in the background (the
# builds mostly wait on the mirror, so they run side by side); finish waits for them all.
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
	PIDS=()
	NAMES=()
	DIRS=()
}

# apt-get in one RUN: update, install without recommends, remove the lists.
APT_INSTALL='export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq --no-install-recommends'
APT_CLEAN='apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log'

# PostgreSQL 15 from Debian's packages, as the PostgreSQL image and the MongoDB stand-in install
# it: the official image's user (uid and gid 999) exists before the packages, which keep it;
# Debian makes no cluster of its own (the entrypoints make theirs).
POSTGRES_INSTALL="groupadd --system --gid 999 postgres; \\
    useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres; \\
    mkdir -p /var/lib/postgresql; chown postgres:postgres /var/lib/postgresql; \\
    $APT_INSTALL postgresql-common >/dev/null; \\
    sed -ri 's/^#? *create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf; \\
    apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null; $APT_CLEAN"

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

# --- the database images -------------------------------------------------------------------
# Each entrypoint follows its official image's environment, so one catalogue row runs on either
# image, and its root phase does what the official one does: it walks the data directory and
# gives whatever another user owns to the engine's user (root needs CHOWN and, to enter the
# engine's private directories on a later start, DAC_READ_SEARCH), then drops to that user
# (SETUID, SETGID). A node that runs these images runs the official ones with the same rights.

if ! have_image "$POSTGRES_IMAGE"; then
	mkdir -p "$WORK/postgres"
	cat >"$WORK/postgres/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# The official postgres image's conventions: POSTGRES_USER (postgres), POSTGRES_PASSWORD,
# POSTGRES_DB ($POSTGRES_USER), POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (scram-sha-256)
# and PGDATA. An empty data directory is initialized: the user is the superuser, the local
# socket trusts, every host connection needs the password.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$1" = postgres ]; then
	# The directories, as the official entrypoint makes them; the socket's may be a tmpfs.
	mkdir -p "$PGDATA"
	chmod 0700 "$PGDATA" 2>/dev/null || :
	mkdir -p /var/run/postgresql 2>/dev/null || :
	chmod 3775 /var/run/postgresql 2>/dev/null || :
	if [ "$(id -u)" = 0 ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
		HOME=/var/lib/postgresql exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
	fi
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		: "${POSTGRES_USER:=postgres}"
		: "${POSTGRES_DB:=$POSTGRES_USER}"
		auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
		args=(--username="$POSTGRES_USER" --auth-local=trust --auth-host="$auth")
		if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
			echo >&2 "error: the database is uninitialized and POSTGRES_PASSWORD is not set: set it (or POSTGRES_HOST_AUTH_METHOD=trust)"
			exit 1
		fi
		# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS holds several arguments, as in the official image
		if [ -n "${POSTGRES_PASSWORD:-}" ]; then
			initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") ${POSTGRES_INITDB_ARGS:-}
		else
			initdb "${args[@]}" ${POSTGRES_INITDB_ARGS:-}
		fi
		printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

		# A server on the socket only, for the database and the init scripts, then stopped.
		pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
		psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER")
		if [ "$POSTGRES_DB" != postgres ]; then
			"${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
		fi
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
			*.sh) echo "running $f"; bash "$f" ;;
			*.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
			esac
		done
		pg_ctl -D "$PGDATA" -m fast -w stop
		echo "PostgreSQL init process complete; ready for start up."
	fi
fi

exec "$@"
EOF
	cat >"$WORK/postgres/Dockerfile" <<EOF
ARG BASE
FROM \$BASE
RUN set -eu; $POSTGRES_INSTALL; \\
    sed -ri "s/^#? *listen_addresses *=.*/listen_addresses = '*'/" /usr/share/postgresql/15/postgresql.conf.sample; \\
    grep -q "^listen_addresses = '\\*'" /usr/share/postgresql/15/postgresql.conf.sample; \\
    mkdir -p /var/run/postgresql /var/lib/postgresql/data /docker-entrypoint-initdb.d; \\
    chown postgres:postgres /var/run/postgresql /var/lib/postgresql/data; \\
    chmod 3777 /var/run/postgresql; chmod 1777 /var/lib/postgresql/data; \\
    /usr/lib/postgresql/15/bin/postgres --version
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
LABEL org.opencontainers.image.description="Local stand-in for postgres:15-bookworm: Debian bookworm postgresql-15, the official entrypoint's POSTGRES_* environment"
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
EOF
	build "$POSTGRES_IMAGE" "$WORK/postgres"
fi

if ! have_image "$MARIADB_IMAGE"; then
	mkdir -p "$WORK/mariadb"
	cat >"$WORK/mariadb/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# The official mariadb image's conventions: MARIADB_ROOT_PASSWORD (or
# MARIADB_ALLOW_EMPTY_ROOT_PASSWORD), MARIADB_ROOT_HOST (%), MARIADB_USER, MARIADB_PASSWORD,
# MARIADB_DATABASE, each also as MYSQL_*. An empty data directory is initialized: the user gets
# every privilege on the database. Values reach the server on stdin, never on a command line.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- mariadbd "$@"
fi
server=0
case "$1" in mariadbd | mysqld) server=1 ;; esac

# sql_string VALUE: VALUE inside a single-quoted SQL string; sql_name VALUE: inside backquotes.
sql_string() {
	local s=${1//\\/\\\\}
	s=${s//$'\n'/\\n}
	printf '%s' "${s//\'/\\\'}"
}
sql_name() { printf '%s' "${1//\`/\`\`}"; }

if [ "$server" = 1 ]; then
	# The server's own directories, with the command's options, as the official entrypoint
	# reads and makes them; the socket's may be a tmpfs.
	help=$("$@" --verbose --help 2>/dev/null)
	setting() { awk -v name="$1" '/^[^ \t]/ && $1 == name { print $2; exit }' <<<"$help"; }
	datadir=$(setting datadir)
	socket=$(setting socket)
	mkdir -p "$datadir" "$(dirname "$socket")"
	if [ "$(id -u)" = 0 ]; then
		find "$datadir" \! -user mysql -exec chown mysql:mysql '{}' +
		find "$(dirname "$socket")" -maxdepth 0 \! -user mysql -exec chown mysql:mysql '{}' \;
		HOME=/var/lib/mysql exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
	fi
	if [ ! -d "$datadir/mysql" ]; then
		for v in ROOT_PASSWORD ALLOW_EMPTY_ROOT_PASSWORD ROOT_HOST USER PASSWORD DATABASE; do
			m=MARIADB_$v my=MYSQL_$v
			if [ -z "${!m:-}" ] && [ -n "${!my:-}" ]; then
				export "$m=${!my}"
			fi
		done
		if [ -z "${MARIADB_ROOT_PASSWORD:-}" ] && [ -z "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}" ]; then
			echo >&2 "error: the database is uninitialized and MARIADB_ROOT_PASSWORD is not set: set it (or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD)"
			exit 1
		fi
		if [ "${MARIADB_USER:-}" = root ]; then
			echo >&2 "error: MARIADB_USER=root: MARIADB_USER and MARIADB_PASSWORD are for a user other than root"
			exit 1
		fi
		echo "Initializing the database in $datadir"
		mariadb-install-db --datadir="$datadir" --rpm --auth-root-authentication-method=normal --skip-test-db \
			--old-mode=UTF8_IS_UTF8MB3 --default-time-zone=SYSTEM --enforce-storage-engine= --skip-log-bin \
			--expire-logs-days=0 --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 "${@:2}" >/dev/null

		# A server on the socket only, to create the users and the database, then stopped.
		"$@" --skip-networking --default-time-zone=SYSTEM --socket="$socket" --wsrep_on=OFF --skip-log-bin \
			--loose-innodb_buffer_pool_load_at_startup=0 &
		pid=$!
		client=(mariadb --protocol=socket --socket="$socket" -uroot --database=mysql --batch --skip-column-names)
		for _ in $(seq 150); do
			if "${client[@]}" -e 'SELECT 1' >/dev/null 2>&1; then break; fi
			kill -0 "$pid" 2>/dev/null || { echo >&2 "error: the temporary server exited"; exit 1; }
			sleep 0.2
		done
		root_host=${MARIADB_ROOT_HOST:-%}
		{
			echo "SET @@SESSION.SQL_LOG_BIN=0;"
			echo "SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');"
			# No anonymous users, root only where MARIADB_ROOT_HOST says (mariadb-install-db makes more).
			echo "DROP USER IF EXISTS root@'127.0.0.1', root@'::1', ''@'localhost';"
			echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, ''', ''''@''', @@hostname, '''');"
			if [ -n "${MARIADB_ROOT_PASSWORD:-}" ]; then
				echo "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$(sql_string "$MARIADB_ROOT_PASSWORD")');"
			fi
			if [ "$root_host" != localhost ]; then
				echo "CREATE USER 'root'@'$(sql_string "$root_host")' IDENTIFIED BY '$(sql_string "${MARIADB_ROOT_PASSWORD:-}")';"
				echo "GRANT ALL ON *.* TO 'root'@'$(sql_string "$root_host")' WITH GRANT OPTION;"
				echo "GRANT PROXY ON ''@'%' TO 'root'@'$(sql_string "$root_host")' WITH GRANT OPTION;"
			fi
			if [ -n "${MARIADB_DATABASE:-}" ]; then
				echo "CREATE DATABASE IF NOT EXISTS \`$(sql_name "$MARIADB_DATABASE")\`;"
			fi
			if [ -n "${MARIADB_USER:-}" ] && [ -n "${MARIADB_PASSWORD:-}" ]; then
				echo "CREATE USER '$(sql_string "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_string "$MARIADB_PASSWORD")';"
				if [ -n "${MARIADB_DATABASE:-}" ]; then
					echo "GRANT ALL ON \`$(sql_name "$MARIADB_DATABASE")\`.* TO '$(sql_string "$MARIADB_USER")'@'%';"
				fi
			fi
		} | "${client[@]}"
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
			*.sh) echo "running $f"; bash "$f" ;;
			*.sql) echo "running $f"; MYSQL_PWD=${MARIADB_ROOT_PASSWORD:-} mariadb --protocol=socket --socket="$socket" -uroot ${MARIADB_DATABASE:+"--database=$MARIADB_DATABASE"} <"$f" ;;
			esac
		done
		kill -s TERM "$pid"
		wait "$pid"
		echo "MariaDB init process done; ready for start up."
	fi
fi

exec "$@"
EOF
	cat >"$WORK/mariadb/Dockerfile" <<EOF
ARG BASE
FROM \$BASE
# The official image's user (uid and gid 999); the data directory Debian's package makes is
# removed (the entrypoint initializes an empty one), the server listens on every address and
# resolves no client names, and keeps no binary log to expire.
RUN set -eu; groupadd --system --gid 999 mysql; \\
    useradd --system --uid 999 --gid mysql --home-dir /var/lib/mysql --no-create-home --shell /usr/sbin/nologin mysql; \\
    $APT_INSTALL mariadb-server mariadb-client >/dev/null; $APT_CLEAN; \\
    rm -rf /var/lib/mysql; mkdir -p /var/lib/mysql /run/mysqld /docker-entrypoint-initdb.d; \\
    chown mysql:mysql /var/lib/mysql /run/mysqld; chmod 1777 /run/mysqld; \\
    sed -ri -e 's/^( *bind-address *=).*/\\1 0.0.0.0/' -e 's/^( *expire_logs_days)/# \\1/' /etc/mysql/mariadb.conf.d/50-server.cnf; \\
    printf '[mariadb]\\nhost-cache-size=0\\nskip-name-resolve\\n' >/etc/mysql/mariadb.conf.d/05-skypanel.cnf; \\
    mariadbd --version
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/mysql
EXPOSE 3306
LABEL org.opencontainers.image.description="Local stand-in for mariadb:10.11: Debian bookworm mariadb-server 10.11, the official entrypoint's MARIADB_* (MYSQL_*) environment"
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]
EOF
	build "$MARIADB_IMAGE" "$WORK/mariadb"
fi

if ! have_image "$REDIS_IMAGE"; then
	mkdir -p "$WORK/redis"
	cat >"$WORK/redis/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# As the official redis image's entrypoint: options alone (or a .conf file first) run
# redis-server; started as root it drops to redis; files are private (umask 077).
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	find . \! -user redis -exec chown redis '{}' +
	HOME=/data exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
# The official image's server has protected mode off: with no configuration file, so has this one.
if [ "$1" = redis-server ] && { [ $# -eq 1 ] || [ "${2#-}" != "$2" ]; }; then
	shift
	set -- redis-server --protected-mode no "$@"
fi
if [ "$(umask)" = 0022 ]; then
	umask 0077
fi
exec "$@"
EOF
	cat >"$WORK/redis/Dockerfile" <<EOF
ARG BASE
FROM \$BASE
# The official image's user (uid and gid 999) owns /data, the working directory.
RUN set -eu; groupadd --system --gid 999 redis; \\
    useradd --system --uid 999 --gid redis --home-dir /data --no-create-home --shell /usr/sbin/nologin redis; \\
    $APT_INSTALL redis-server >/dev/null; $APT_CLEAN; \\
    mkdir -p /data; chown redis:redis /data; \\
    redis-server --version
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
LABEL org.opencontainers.image.description="Local stand-in for redis:7-bookworm: Debian bookworm redis-server 7.0, data in /data"
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
EOF
	build "$REDIS_IMAGE" "$WORK/redis"
fi

# --- the MongoDB stand-in ---------------------------------------------------------------------
# FerretDB's command panics unless its build wrote build/version/version.txt, which `go install`
# does not: it is built from a copy of its module with that file written. Built while the images
# above build (those wait on the mirror, this on the CPU), then its image.
MONGO_TOOLS_PID=
if ! have_image "$MONGO_IMAGE"; then
	mkdir -p "$WORK/mongo"
	command -v go >/dev/null 2>&1 || die "Go is needed to build FerretDB and skypanel-mongo (make deps)"
	build_mongo_tools() {
		set -e
		local cached=.data/tools/ferretdb-$FERRETDB_VERSION src
		if [ ! -x "$cached" ]; then
			src=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
			[ -n "$src" ] && [ -d "$src" ] || { echo "go mod download github.com/FerretDB/FerretDB@$FERRETDB_VERSION gave no directory"; return 1; }
			cp -r "$src" "$WORK/ferretdb-src"
			chmod -R u+w "$WORK/ferretdb-src"
			echo "$FERRETDB_VERSION" >"$WORK/ferretdb-src/build/version/version.txt"
			mkdir -p .data/tools
			(cd "$WORK/ferretdb-src" && CGO_ENABLED=0 go build -trimpath -o "$OLDPWD/$cached.tmp" ./cmd/ferretdb)
			mv "$cached.tmp" "$cached"
		fi
		cp "$cached" "$WORK/mongo/ferretdb"
		CGO_ENABLED=0 go build -trimpath -o "$WORK/mongo/skypanel-mongo" ./cmd/skypanel-mongo
	}
	log "building FerretDB $FERRETDB_VERSION and skypanel-mongo (Go; a few minutes the first time, log: $WORK/mongo/tools.log)"
	build_mongo_tools >"$WORK/mongo/tools.log" 2>&1 &
	MONGO_TOOLS_PID=$!
fi

finish

if [ -n "$MONGO_TOOLS_PID" ]; then
	if ! wait "$MONGO_TOOLS_PID"; then
		tail -n 40 "$WORK/mongo/tools.log" >&2
		die "could not build FerretDB or skypanel-mongo"
	fi
	cat >"$WORK/mongo/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# A local stand-in for the official mongo image: FerretDB speaks the MongoDB wire protocol on
# 27017 and keeps the data in a PostgreSQL cluster of its own, in /data/db/postgresql, that
# listens on its socket only. As the official image: MONGO_INITDB_ROOT_USERNAME and
# MONGO_INITDB_ROOT_PASSWORD make the root user (in admin) at the first start, options alone
# run the server, and started as root it drops to the engine's user (postgres, uid 999).
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- mongod "$@"
fi
if [ "$1" != mongod ]; then
	exec "$@"
fi
data=/data/db
mkdir -p "$data"
if [ "$(id -u)" = 0 ]; then
	find "$data" \! -user postgres -exec chown postgres '{}' +
	HOME=/var/lib/postgresql exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi
export PGDATA=$data/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${MONGO_INITDB_ROOT_USERNAME:-}" ] || [ -z "${MONGO_INITDB_ROOT_PASSWORD:-}" ]; then
		echo >&2 "error: the database is uninitialized: set MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD"
		exit 1
	fi
	# Only FerretDB, on the socket, reaches this cluster: no password, no TCP.
	initdb --username=ferretdb --auth-local=trust --auth-host=reject --encoding=UTF8 >/dev/null
fi

# The socket goes to /tmp, writable whichever user the container starts as.
postgres -c listen_addresses='' -c unix_socket_directories=/tmp &
pg=$!
ferret=
stop() {
	trap '' TERM INT
	if [ -n "$ferret" ]; then kill -TERM "$ferret" 2>/dev/null || :; wait "$ferret" 2>/dev/null || :; fi
	kill -INT "$pg" 2>/dev/null || :
	wait "$pg" 2>/dev/null || :
}
trap 'stop; exit 0' TERM INT
until pg_isready -q -h /tmp -U ferretdb -d postgres; do
	kill -0 "$pg" 2>/dev/null || { echo >&2 "error: PostgreSQL did not start"; exit 1; }
	sleep 0.2
done

# The root user is made when the admin database does not exist yet, that is once; its password
# reaches FerretDB in its environment, never on a command line.
export FERRETDB_SETUP_DATABASE=admin FERRETDB_SETUP_USERNAME="${MONGO_INITDB_ROOT_USERNAME:-}" \
	FERRETDB_SETUP_PASSWORD="${MONGO_INITDB_ROOT_PASSWORD:-}"
ferretdb --listen-addr=:27017 --postgresql-url='postgres://ferretdb@/postgres?host=/tmp' \
	--test-enable-new-auth --state-dir="$data" --debug-addr=- --telemetry=disable --log-level=error &
ferret=$!
# Either one ending ends the container (its restart policy starts both again).
s=0
wait -n "$pg" "$ferret" || s=$?
echo >&2 "the server stopped (status $s)"
stop
exit 1
EOF
	# From the Debian base, not FROM the PostgreSQL image: that one's VOLUME would give every
	# MongoDB container an anonymous volume nobody removes. The same packages and user, though
	# (POSTGRES_INSTALL).
	cat >"$WORK/mongo/Dockerfile" <<EOF
ARG BASE
FROM \$BASE
RUN set -eu; $POSTGRES_INSTALL; \\
    mkdir -p /data/db; chown postgres:postgres /data/db
COPY ferretdb skypanel-mongo /usr/local/bin/
COPY docker-entrypoint.sh /usr/local/bin/mongo-entrypoint.sh
RUN set -eu; chmod 0755 /usr/local/bin/ferretdb /usr/local/bin/skypanel-mongo /usr/local/bin/mongo-entrypoint.sh; \\
    ferretdb --version | head -n 1
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
VOLUME /data/db
EXPOSE 27017
LABEL org.opencontainers.image.description="Local stand-in for mongo:7.0: FerretDB $FERRETDB_VERSION (MongoDB wire protocol) over Debian bookworm postgresql-15, the official entrypoint's MONGO_INITDB_ROOT_* environment, data in /data/db"
ENTRYPOINT ["mongo-entrypoint.sh"]
CMD ["mongod"]
EOF
	build "$MONGO_IMAGE" "$WORK/mongo"
	finish
fi
log "ok: ${IMAGES[*]}"
