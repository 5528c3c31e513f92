# Sourced by shell tests that check nomoat against independent JavaScript implementations
# (installed from npm into a cache folder, never needed at run time).
#   node_setup PKG@VERSION...   installs what is missing; returns 1 (caller skips) without npm
# Afterwards `node` finds the packages through NODE_PATH.
NODE_CACHE=${NOMOAT_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nomoat/node}
node_setup() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
    mkdir -p "$NODE_CACHE" || return 1
    [ -f "$NODE_CACHE/package.json" ] || echo '{"name":"nomoat-test-deps","private":true}' >"$NODE_CACHE/package.json"
    for pkg in "$@"; do
        name=${pkg%@*}; version=${pkg##*@}
        installed=$(node -p "try{require('$NODE_CACHE/node_modules/$name/package.json').version}catch(e){''}" 2>/dev/null)
        if [ "$installed" != "$version" ]; then
            (cd "$NODE_CACHE" && npm install --no-audit --no-fund --loglevel=error "$pkg" >/dev/null 2>&1) || return 1
        fi
    done
    export NODE_PATH="$NODE_CACHE/node_modules"
    return 0
}
