#!/usr/bin/env bash
# Checks `make test-deps` on a machine that lacks something, without touching the machine:
# each tool in turn is hidden from PATH (a directory of links to everything else) together
# with apt-get, and `make test-deps` must fail at once naming the tool and the command that
# gets it. Then, with a fake apt-get that "installs" the hidden tool, `make system-deps` must
# install it and pass. Run by `make test-deps-selftest` (part of `make test`).
set -euo pipefail
cd "$(dirname "$0")/../.."
MAKE_BIN=$(command -v make)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# Links to every executable of the real PATH (the first of each name), made once.
mkdir -p "$work/all"
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -d "$dir" ] || continue
  for exe in "$dir"/*; do
    name=${exe##*/}
    [ -x "$exe" ] && [ ! -e "$work/all/$name" ] && ln -s "$exe" "$work/all/$name"
  done
done

# A PATH directory with every executable of the real PATH except the named ones.
shadow_path() {
  local bin="$work/bin" name
  rm -rf "$bin"
  cp -a "$work/all" "$bin"
  for name in "$@"; do rm -f "$bin/$name"; done
  echo "$bin"
}

expect_missing() { # hidden-tool expected-text...
  local hide=$1 path out status=0
  shift
  path=$(shadow_path "$hide" apt-get sudo rustup)
  out=$(PATH=$path "$MAKE_BIN" -s test-deps 2>&1) || status=$?
  for want in "$@"; do
    if [ $status -eq 0 ] || ! grep -qF -- "$want" <<<"$out"; then
      echo "FAIL: with $hide hidden, make test-deps exited $status without '$want':"
      echo "$out" | sed 's/^/    /'
      failures=$((failures + 1))
      return
    fi
  done
  echo "ok: $hide hidden -> $(grep -F -- "$1" <<<"$out" | head -1 | sed 's/  */ /g')"
}

expect_missing cargo "cargo, rustc" "https://sh.rustup.rs"
expect_missing rustc "cargo, rustc" "https://sh.rustup.rs"
expect_missing cc "cc (C compiler" "apt-get install build-essential"
expect_missing c++ "c++ (C++ compiler)" "apt-get install build-essential"
expect_missing python3 "python3 " "apt-get install python3"
expect_missing unzip "unzip" "apt-get install unzip"
expect_missing java "java (Java client tests)" "apt-get install default-jdk-headless"
expect_missing javac "javac >= 11" "apt-get install default-jdk-headless"
expect_missing kcat "kcat " "apt-get install kcat"
expect_missing pkg-config "pkg-config (" "apt-get install pkg-config"

# Nothing missing: passes without apt-get.
if PATH=$(shadow_path apt-get sudo) "$MAKE_BIN" -s system-deps >/dev/null 2>&1; then
  echo "ok: nothing missing -> passes without apt-get"
else
  echo "FAIL: make system-deps fails with every tool present"
  failures=$((failures + 1))
fi

# python3 without ensurepip (Debian's python3 without python3-venv).
path=$(shadow_path python3 apt-get sudo rustup)
mkdir -p "$work/no-ensurepip/ensurepip"
echo 'raise ImportError("ensurepip hidden by test-system-deps.sh")' \
  >"$work/no-ensurepip/ensurepip/__init__.py"
printf '#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n' "$work/no-ensurepip" "$(command -v python3)" \
  >"$path/python3"
chmod +x "$path/python3"
status=0
out=$(PATH=$path "$MAKE_BIN" -s test-deps 2>&1) || status=$?
if [ $status -ne 0 ] && grep -qF "apt-get install python3-venv" <<<"$out"; then
  echo "ok: ensurepip hidden -> names python3-venv"
else
  echo "FAIL: ensurepip hidden: exit $status"; echo "$out" | sed 's/^/    /'
  failures=$((failures + 1))
fi

# A kcat on another librdkafka than the old one test_kcat.py checks.
path=$(shadow_path kcat apt-get sudo rustup)
printf '#!/bin/sh\necho "Version 1.7.1 (JSON, librdkafka 2.8.0 builtin.features=zstd)"\n' \
  >"$path/kcat"
chmod +x "$path/kcat"
status=0
out=$(PATH=$path "$MAKE_BIN" -s test-deps 2>&1) || status=$?
if [ $status -ne 0 ] && grep -qF "kcat on librdkafka 2.0.2" <<<"$out"; then
  echo "ok: kcat on librdkafka 2.8.0 -> named"
else
  echo "FAIL: kcat on librdkafka 2.8.0: exit $status"; echo "$out" | sed 's/^/    /'
  failures=$((failures + 1))
fi

# Installing: kcat hidden, a fake apt-get (and sudo) that links it back on "install".
path=$(shadow_path kcat apt-get sudo rustup)
real_kcat=$(command -v kcat)
cat >"$path/apt-get" <<EOF
#!/bin/sh
echo "apt-get \$*" >>"$work/apt.log"
case "\$*" in *install*kcat*) ln -sf "$real_kcat" "$path/kcat" ;; esac
EOF
printf '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n' >"$path/sudo"
chmod +x "$path/apt-get" "$path/sudo"
status=0
out=$(PATH=$path "$MAKE_BIN" -s system-deps 2>&1) || status=$?
if [ $status -eq 0 ] && grep -q "install.* kcat" "$work/apt.log"; then
  echo "ok: kcat hidden, apt-get usable -> installed: $(grep install "$work/apt.log")"
else
  echo "FAIL: kcat hidden with apt-get usable: exit $status"; echo "$out" | sed 's/^/    /'
  failures=$((failures + 1))
fi

if [ $failures -ne 0 ]; then
  echo "test-system-deps: $failures FAILED"
  exit 1
fi
echo "test-system-deps: all passed"
