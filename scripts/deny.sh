#!/usr/bin/env bash
# cargo deny (advisories, licenses, bans, sources; policy and reviewed exceptions in deny.toml),
# with the advisory database read offline from the snapshot beside the repository.
#
#   scripts/deny.sh                      # installs the pinned cargo-deny if needed, then checks
#   ADVISORY_DB=/path/to/advisory-db scripts/deny.sh
#
# The database's git remote is not reachable from these machines: ../shared/advisory-db holds a copy of
# its files (see its SNAPSHOT.md). cargo-deny only reads a git checkout, so the files are made into a
# one-commit repository in a temp dir at check time and cargo-deny runs with --offline. The
# snapshot's age is printed; a stale snapshot is reported, not failed (it is refreshed from outside).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
STALE_DAYS=90

if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  echo "deny: installing cargo-deny $CARGO_DENY_VERSION from crates.io (several minutes on 2 cores)"
  cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi

# cargo deny reads `cargo metadata`, offline below: have every locked crate downloaded (crates.io is
# reachable; a no-op when they are).
cargo fetch --locked --quiet

snapshot=${ADVISORY_DB:-$PWD/../shared/advisory-db}
if [ ! -d "$snapshot/crates" ] || [ ! -f "$snapshot/SNAPSHOT.md" ]; then
  echo "deny: no advisory-db snapshot at $snapshot (expected crates/ and SNAPSHOT.md)" >&2
  exit 1
fi
# "... at commit <sha> (<yyyy-mm-dd>) ..." in SNAPSHOT.md.
commit=$(grep -o 'commit [0-9a-f]\{40\}' "$snapshot/SNAPSHOT.md" | head -n 1 | cut -d' ' -f2)
taken=$(grep -o '([0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\})' "$snapshot/SNAPSHOT.md" | head -n 1 | tr -d '()')
if [ -z "$commit" ] || [ -z "$taken" ]; then
  echo "deny: cannot read the commit and date from $snapshot/SNAPSHOT.md" >&2
  exit 1
fi
age_days=$(( ($(date -u +%s) - $(date -u -d "$taken" +%s)) / 86400 ))
echo "deny: advisory-db snapshot of $taken (rustsec/advisory-db $commit), $age_days days old"
if [ "$age_days" -gt "$STALE_DAYS" ]; then
  echo "deny: WARNING: the snapshot is older than $STALE_DAYS days: advisories published since $taken are not checked (refresh shared/advisory-db)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tailgate-deny.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TAILGATE_ADVISORY_DBS="$work/dbs"

# Where cargo-deny looks for the database under db-path: a directory named from the database URL
# (a hash of it), which it reports when asked to open one that is not there.
probe=$(cargo deny --color never --log-level debug --offline --locked check advisories 2>&1 || true)
db=$(printf '%s\n' "$probe" | sed -n "s/.*Opening advisory database at '\([^']*\)'.*/\1/p" | head -n 1)
if [ -z "$db" ]; then
  printf '%s\n' "$probe" | tail -n 20 >&2
  echo "deny: could not learn where cargo-deny $CARGO_DENY_VERSION expects the database" >&2
  exit 1
fi
case "$db" in
  "$TAILGATE_ADVISORY_DBS"/*) ;;
  *) echo "deny: cargo-deny expects the database at $db, outside $TAILGATE_ADVISORY_DBS (deny.toml db-path?)" >&2; exit 1 ;;
esac

mkdir -p "$db"
cp -R "$snapshot/." "$db/"
chmod -R u+w "$db"
(
  cd "$db"
  export GIT_AUTHOR_DATE="${taken}T00:00:00Z" GIT_COMMITTER_DATE="${taken}T00:00:00Z"
  git init -q -b main
  git add -A
  git -c user.name=snapshot -c user.email=snapshot@invalid -c commit.gpgsign=false \
    commit -q -m "rustsec/advisory-db $commit (offline snapshot)"
)

cargo deny --color never --offline --locked check --show-stats advisories licenses bans sources
