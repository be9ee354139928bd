# Shared by scripts/*: install Debian packages only when missing.

# need_packages PKG...: apt-get install the ones not installed yet.
need_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    # A fresh machine may have no package lists yet.
    "${apt[@]}" install "${missing[@]}" >/dev/null 2>&1 || {
        "${apt[@]}" update >/dev/null
        "${apt[@]}" install "${missing[@]}" >/dev/null
    }
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "$0: must run as root (containers, cgroups, mounts)" >&2
        exit 1
    fi
}
