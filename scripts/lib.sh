# Shared by the scripts in this folder (sourced, not run). Before sourcing, set SCRIPT_NAME;
# define log() afterwards to change how messages look.

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
	exit 1
}

# as_root runs a command as root: directly when we are root, else through sudo.
if [ "$(id -u)" -eq 0 ]; then
	SUDO=()
elif command -v sudo >/dev/null 2>&1; then
	SUDO=(sudo)
else
	SUDO=()
fi
as_root() {
	if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
		die "need root for: $* (run as root, or install sudo)"
	fi
	"${SUDO[@]}" "$@"
}
