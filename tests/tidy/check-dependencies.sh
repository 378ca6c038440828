#!/usr/bin/env bash
# Dependency hygiene for the shardlog crate (issue 18 item 7), run by `make lint`:
#  1. the broker library, built without the `cli` feature, does not depend on rdkafka /
#     librdkafka (only the CLI subcommands in src/cli/ link it); the same query with the
#     default features must find it, so the check cannot pass by looking at nothing;
#  2. every crate under [dependencies] in Cargo.toml is used somewhere in src/.
# Reads Cargo.toml, Cargo.lock and src/ only: no build, no network (cargo tree --offline).
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO=${CARGO:-cargo}
failed=0

tree() { "$CARGO" tree --offline --locked -p shardlog -e normal --prefix none "$@"; }
if tree --no-default-features | grep -Eq '^rdkafka(-sys)? '; then
  echo "error: the broker library (shardlog --no-default-features) depends on rdkafka:" >&2
  "$CARGO" tree --offline --locked -p shardlog -e normal --no-default-features -i rdkafka-sys >&2
  failed=1
fi
if ! tree | grep -Eq '^rdkafka-sys '; then
  echo "error: check-dependencies.sh no longer finds rdkafka-sys even with the cli feature;" \
       "fix the check (it would pass vacuously)" >&2
  failed=1
fi

# Crate names from the [dependencies] table (up to the next table header).
dependencies=$(awk '/^\[dependencies\]/{on=1; next} /^\[/{on=0} on && /^[A-Za-z0-9_-]+[[:space:]]*=/ {print $1}' Cargo.toml)
if [ -z "$dependencies" ]; then
  echo "error: found no [dependencies] in Cargo.toml; fix the check" >&2
  failed=1
fi
for crate in $dependencies; do
  module=${crate//-/_}
  # A path (`crate::`), a `use crate` / `extern crate`, or a derive through serde's macros.
  if ! grep -rqE "(^|[^A-Za-z0-9_])${module}(::|[[:space:]]*[;{])|use ${module}\b|extern crate ${module}\b" \
       src --include='*.rs'; then
    echo "error: Cargo.toml declares '${crate}' but nothing in src/ uses it; remove it" >&2
    failed=1
  fi
done

if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "dependencies ok: broker library free of librdkafka; every declared crate used"
