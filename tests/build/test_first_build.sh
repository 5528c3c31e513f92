#!/bin/sh
# The first build on a machine without our Debian packages (issue: `make demo` once linked
# without -lcjson -lxxhash -lzstd, because the Makefile asked pkg-config for the flags before the
# install step had run). Modelled without uninstalling anything: a copy of the tree whose
# `pkg-config` knows the libraries only once a stand-in install step has run, and a copy whose
# `dpkg-query` reports a package missing and whose `id` is not root.
. "${NOMOAT_ROOT:-.}/tests/lib.sh"
cd "$ROOT" || exit 2

# This test runs inside `make test`: the outer make's MAKEFLAGS (NOMOAT_DEPS_DONE=1 among them)
# would tell the copies' makes that the install step already ran.
unset MAKEFLAGS MFLAGS MAKELEVEL NOMOAT_DEPS_DONE SAN BUILD  # and a plain build even under SAN=1
real_pkgconfig=$(command -v pkg-config) || { skip "no pkg-config on this machine"; finish; }
real_dpkgquery=$(command -v dpkg-query) || { skip "not a Debian machine (no dpkg-query)"; finish; }

# A fresh copy of the source tree (tracked and new files, no build folders).
copy_tree() {
    mkdir -p "$1"
    if git -C "$ROOT" rev-parse >/dev/null 2>&1; then
        git -C "$ROOT" ls-files -co --exclude-standard -z | (cd "$ROOT" && xargs -0 cp --parents -t "$1")
    else
        tar -C "$ROOT" --exclude='./build*' -cf - . | tar -C "$1" -xf -
    fi
}

# 1. pkg-config answers only after the install step: the first `make` must still link.
fresh="$SCRATCH/fresh"; copy_tree "$fresh"
mkdir -p "$SCRATCH/bin1"
installed="$SCRATCH/installed"
cat >"$SCRATCH/bin1/pkg-config" <<EOT
#!/bin/sh
[ -f "$installed" ] || exit 1   # libzstd, libcjson, libxxhash, cmocka: "not found" before the install
exec "$real_pkgconfig" "\$@"
EOT
cat >"$SCRATCH/install-step.sh" <<EOT
#!/bin/sh
echo "stand-in install step" >&2
touch "$installed"
EOT
chmod +x "$SCRATCH/bin1/pkg-config"
check "pkg-config does not know the libraries before the install step" \
    sh -c "! PATH='$SCRATCH/bin1':\$PATH pkg-config --libs libcjson"
check_status "first make on a machine without the packages builds everything" 0 \
    env PATH="$SCRATCH/bin1:$PATH" make -C "$fresh" -j2 DEPS_SCRIPT="$SCRATCH/install-step.sh"
check "the install step ran" test -f "$installed"
check "the tools were linked" test -x "$fresh/build/nomoat-convert" -a -x "$fresh/build/nomoat-verify"
check "a tool that reads JSON runs" "$fresh/build/nomoat-convert" --dry-run "$DATA/wikillama-bf16"

# 2. Not root and a package missing: stop before compiling, with the exact apt-get command.
noroot="$SCRATCH/noroot"; copy_tree "$noroot"
mkdir -p "$SCRATCH/bin2"
cat >"$SCRATCH/bin2/id" <<'EOT'
#!/bin/sh
[ "$1" = -u ] && { echo 1000; exit 0; }
exec /usr/bin/id "$@"
EOT
cat >"$SCRATCH/bin2/dpkg-query" <<EOT
#!/bin/sh
case "\$*" in *libcjson-dev*) echo "dpkg-query: no packages found matching libcjson-dev" >&2; exit 1 ;; esac
exec "$real_dpkgquery" "\$@"
EOT
chmod +x "$SCRATCH/bin2/id" "$SCRATCH/bin2/dpkg-query"
for goal in all test demo; do
    PATH="$SCRATCH/bin2:$PATH" make -C "$noroot" $goal >"$SCRATCH/noroot.out" 2>&1; rc=$?
    check "make $goal without root and without libcjson-dev: non-zero exit" test "$rc" -ne 0
    check "make $goal prints the exact apt-get command" grep -q '^run:  sudo apt-get install -y libcjson-dev$' "$SCRATCH/noroot.out"
    check "make $goal stopped before compiling" sh -c "! find '$noroot' -name '*.o' | grep -q ."
done
finish
