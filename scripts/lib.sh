# Shared helpers for the scripts in this folder. Source it; do not run it.

# Installs libsodium-dev and pkg-config with apt-get when libsodium is not found.
ensure_libsodium() {
    if pkg-config --exists libsodium 2>/dev/null; then
        return 0
    fi
    echo "==> libsodium-dev not found; installing it with apt-get"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "error: libsodium-dev is missing and sudo is not available; install libsodium-dev and pkg-config as root" >&2; return 1; }
        sudo="sudo"
    fi
    $sudo apt-get install -y libsodium-dev pkg-config >/dev/null 2>&1 \
        || { $sudo apt-get update >/dev/null && $sudo apt-get install -y libsodium-dev pkg-config >/dev/null; } \
        || { echo "error: apt-get could not install libsodium-dev" >&2; return 1; }
    pkg-config --exists libsodium || { echo "error: libsodium still not found by pkg-config" >&2; return 1; }
}

# Prints the elapsed seconds since the given start time (from `date +%s`).
elapsed_since() { echo $(( $(date +%s) - $1 )); }
