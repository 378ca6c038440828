#!/usr/bin/env bash
# Starts shardlog once with each broker profile in tuning/broker/ and checks that it comes
# up (config parsed with deny_unknown_fields, validated, listener open), then stops it.
# Also runs check.sh to make sure it reports without failing. Exits non-zero on failure.
#
# Usage: tuning/test-profiles.sh [path/to/shardlog]   (default: target/release/shardlog)
# Needs the broker binary built: cargo build --release --bin shardlog
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$root/target/release/shardlog}
[ -x "$binary" ] || { echo "test-profiles: $binary not built (make build)" >&2; exit 2; }
work="$root/target/tuning-test"   # ext4, like every data dir (never /dev/shm)
mkdir -p "$work"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

failures=0
for profile in "$root"/tuning/broker/*.toml; do
  name=$(basename "$profile" .toml)
  port=$(free_port)
  data="$work/$name-data"
  log="$work/$name.log"
  rm -rf "$data"
  admin_port=$(free_port)
  "$binary" serve --config "$profile" --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin_port" --data-dir "$data" >"$log" 2>&1 &
  pid=$!
  up=0
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if listening "$port"; then up=1; break; fi
    sleep 0.1
  done
  if [ "$up" = 1 ]; then
    echo "ok: $name profile loads and the broker listens on 127.0.0.1:$port"
  else
    echo "FAIL: $name profile: broker did not come up; its log:"
    sed 's/^/  /' "$log"
    failures=$((failures + 1))
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
done

# A profile with a misspelt key must be refused (deny_unknown_fields), or the test above
# proves nothing about the keys' names.
bad="$work/misspelt.toml"
printf '[storage]\nsync_polcy = "every_batch"\n' > "$bad"
if "$binary" serve --config "$bad" --listen 127.0.0.1:1 --admin-listen "" --data-dir "$work/bad-data" \
     >"$work/misspelt.log" 2>&1; then
  echo "FAIL: a profile with an unknown key was accepted"
  failures=$((failures + 1))
elif grep -q "sync_polcy" "$work/misspelt.log"; then
  echo "ok: a misspelt key is refused with its name in the error"
else
  echo "FAIL: a misspelt key was refused without naming it:"; sed 's/^/  /' "$work/misspelt.log"
  failures=$((failures + 1))
fi

"$root/tuning/check.sh" --data-dir "$work" >/dev/null \
  && echo "ok: check.sh reports (read-only) and exits 0" \
  || { echo "FAIL: check.sh failed"; failures=$((failures + 1)); }

echo "tuning profiles: $failures failure(s)"
[ "$failures" -eq 0 ]
