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

# node_llamacpp_avx2: after node_setup node-llama-cpp@V, points NODE_PATH at a copy of the cache in
# which node-llama-cpp's CPU backend can only load its AVX2 ("haswell") build. The package picks
# the best build for the CPU at run time (AVX-512 on many machines), whose kernels round
# differently; llama.cpp's reference figures were made with the AVX2 build, and nomoat-verify
# reproduces that arithmetic. Returns 1 (caller skips) when the layout is not the expected one.
node_llamacpp_avx2() {
    src="$NODE_CACHE/node_modules"
    bins="@node-llama-cpp/linux-x64/bins/linux-x64"
    [ -f "$src/$bins/libggml-cpu-haswell.so" ] || return 1
    for f in avx2 fma f16c; do grep -qw "$f" /proc/cpuinfo 2>/dev/null || return 1; done
    view="$NODE_CACHE-avx2"
    stamp=$(node -p "require('$src/node-llama-cpp/package.json').version" 2>/dev/null)
    if [ "$(cat "$view/.stamp" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$view.tmp" "$view" && mkdir -p "$view.tmp/node_modules/@node-llama-cpp" || return 1
        for d in "$src"/* "$src"/.[!.]*; do
            [ -e "$d" ] || continue
            case ${d##*/} in @node-llama-cpp) ;; *) cp -a "$d" "$view.tmp/node_modules/" || return 1 ;; esac
        done
        cp -a "$src/@node-llama-cpp/linux-x64" "$view.tmp/node_modules/@node-llama-cpp/" || return 1
        for f in "$view.tmp/node_modules/$bins"/libggml-cpu-*.so; do
            case ${f##*/} in libggml-cpu-haswell.so) ;; *) rm -f "$f" ;; esac
        done
        echo "$stamp" >"$view.tmp/.stamp" && mv "$view.tmp" "$view" || return 1
    fi
    export NODE_PATH="$view/node_modules"
    return 0
}
