#!/usr/bin/env bash
# The machine-level tools `make test` needs (run by `make test-deps`, before anything is built).
#
# Each tool is checked; what is missing is installed when that can be done here (Debian
# packages through apt-get as root or with passwordless sudo; rustup components), then
# everything is checked again. Whatever is still missing is listed, each with the one command
# that gets it, and the script exits 1, so `make test` stops at once instead of failing deep
# inside a build or a test.
#
# Environment:
#   SHARDLOG_TEST_DEPS_NO_INSTALL=1   check only, install nothing
#   SHARDLOG_TEST_KCAT_LIBRDKAFKA     the librdkafka kcat must link (default 2.0.2: Debian 12's
#                                     kcat, the old client tests/python/test_kcat.py checks)
# tests/deps/test-system-deps.sh hides each tool from PATH in turn and checks the message.
set -uo pipefail

NO_INSTALL=${SHARDLOG_TEST_DEPS_NO_INSTALL:-0}
KCAT_LIBRDKAFKA=${SHARDLOG_TEST_KCAT_LIBRDKAFKA:-2.0.2}
JDK_MAJOR_MIN=11 # kafka-clients 4.x

have() { command -v "$1" >/dev/null 2>&1; }

# One row per tool: name, check function, Debian package ("" = not from apt), rustup component
# ("" = none), the one command that gets it.
TOOLS=()
tool() { TOOLS+=("$1|$2|$3|$4|$5"); }

check_rust() { have cargo && have rustc; }
check_rustfmt() { have cargo && cargo fmt --version >/dev/null 2>&1; }
check_clippy() { have cargo && cargo clippy --version >/dev/null 2>&1; }
check_cc() { have cc; }
check_cxx() { have c++; }
check_make() { have make; }
check_python3() { have python3; }
check_venv() { have python3 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }
check_unzip() { have unzip; }
check_java() { have java; }
check_javac() {
  have javac || return 1
  local major
  major=$(javac -version 2>&1 | sed -n 's/^javac \([0-9]*\).*/\1/p')
  [ -n "$major" ] && [ "$major" -ge "$JDK_MAJOR_MIN" ]
}
check_kcat() { have kcat; }
check_pkg_config() { have pkg-config; }
check_libssl() { have pkg-config || return 0; pkg-config --exists openssl; } # else: pkg-config
check_kcat_librdkafka() {
  have kcat || return 0 # reported as "kcat" above
  kcat -V 2>&1 | grep -q "librdkafka $KCAT_LIBRDKAFKA "
}

tool "cargo, rustc (Rust toolchain)" check_rust "" "" \
  "curl --proto '=https' -sSf https://sh.rustup.rs | sh"
tool "rustfmt (make lint)" check_rustfmt "" rustfmt "rustup component add rustfmt"
tool "clippy (make lint)" check_clippy "" clippy "rustup component add clippy"
tool "cc (C compiler: the CLI builds librdkafka, zlib, zstd from source)" check_cc \
  build-essential "" "apt-get install build-essential"
tool "c++ (C++ compiler)" check_cxx build-essential "" "apt-get install build-essential"
tool "make" check_make build-essential "" "apt-get install build-essential"
tool "python3" check_python3 python3 "" "apt-get install python3"
tool "python3 venv + ensurepip (target/venv)" check_venv python3-venv "" \
  "apt-get install python3-venv"
tool "unzip (Java client jars)" check_unzip unzip "" "apt-get install unzip"
tool "java (Java client tests)" check_java default-jdk-headless "" \
  "apt-get install default-jdk-headless"
tool "javac >= $JDK_MAJOR_MIN (JDK: tests/java)" check_javac default-jdk-headless "" \
  "apt-get install default-jdk-headless"
tool "kcat" check_kcat kcat "" "apt-get install kcat"
tool "pkg-config (bench-harness's librdkafka finds OpenSSL)" check_pkg_config pkg-config "" \
  "apt-get install pkg-config"
tool "OpenSSL headers (bench-harness's librdkafka speaks SSL)" check_libssl libssl-dev "" \
  "apt-get install libssl-dev"
tool "kcat on librdkafka $KCAT_LIBRDKAFKA (the old client test_kcat.py checks)" \
  check_kcat_librdkafka "" "" \
  "apt-get install kcat=1.7.1-2 (Debian 12's; other releases link another librdkafka)"

missing_rows() {
  local row name check
  for row in "${TOOLS[@]}"; do
    IFS='|' read -r name check _ <<<"$row"
    "$check" || echo "$row"
  done
}

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
# Why nothing could be installed from apt, or "" when apt-get can be used.
apt_unusable() {
  if [ "$NO_INSTALL" = 1 ]; then echo "SHARDLOG_TEST_DEPS_NO_INSTALL=1"; return; fi
  if ! have apt-get; then echo "no apt-get on this machine"; return; fi
  if [ -n "$SUDO" ] && ! { have sudo && sudo -n true 2>/dev/null; }; then
    echo "not root and no passwordless sudo"
  fi
}

install_missing() {
  local rows=("$@") row packages=() components=() package component why
  for row in "${rows[@]}"; do
    IFS='|' read -r _ _ package component _ <<<"$row"
    [ -n "$package" ] && packages+=("$package")
    [ -n "$component" ] && components+=("$component")
  done
  if [ ${#components[@]} -gt 0 ] && [ "$NO_INSTALL" != 1 ] && have rustup; then
    echo "test-deps: rustup component add ${components[*]}"
    rustup component add "${components[@]}" || echo "test-deps: rustup component add failed"
  fi
  [ ${#packages[@]} -gt 0 ] || return 0
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  why=$(apt_unusable)
  if [ -n "$why" ]; then
    echo "test-deps: not installing ${packages[*]}: $why"
    return 0
  fi
  echo "test-deps: apt-get install ${packages[*]}"
  { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
      --no-install-recommends "${packages[@]}"; } ||
    echo "test-deps: apt-get install ${packages[*]} failed (no network or no Debian mirror?)"
}

mapfile -t missing < <(missing_rows)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: every tool present"
  exit 0
fi
install_missing "${missing[@]}"
mapfile -t missing < <(missing_rows)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: every tool present (after installing)"
  exit 0
fi

prefix=""
[ -n "$SUDO" ] && prefix="sudo "
{
  echo
  echo "make test-deps: the tests need these and they could not be installed here:"
  for row in "${missing[@]}"; do
    IFS='|' read -r name _ package _ command <<<"$row"
    case "$command" in apt-get*) command="$prefix$command" ;; esac
    printf '  %-62s %s\n' "$name" "$command"
  done
  echo "Install them and run make test again."
} >&2
exit 1
