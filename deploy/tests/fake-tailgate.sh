#!/usr/bin/env bash
# Stand-in for the tailgate binary, used by check.sh to test run-local.sh's process handling while the
# real binary cannot run these configs yet. It understands the two command lines run-local.sh uses:
#   fake-tailgate.sh validate --config FILE   -> exit 0 if FILE exists
#   fake-tailgate.sh --config=FILE            -> serve HTTP 200 on FILE's health_check endpoint until TERM
set -euo pipefail
if [ "${1:-}" = validate ]; then
  [ "${2:-}" = --config ] && [ -f "${3:-}" ] && exit 0
  echo "fake-tailgate: usage: validate --config FILE" >&2; exit 2
fi
case ${1:-} in --config=*) cfg=${1#--config=} ;; *) echo "fake-tailgate: want --config=FILE" >&2; exit 2 ;; esac
endpoint=$(grep -A1 '^  health_check:' "$cfg" | sed -n 's/.*endpoint: *"\(.*\)"/\1/p')
[ -n "$endpoint" ] || { echo "fake-tailgate: no health_check endpoint in $cfg" >&2; exit 2; }
docroot=$(mktemp -d)
echo ok > "$docroot/index.html"
echo "fake-tailgate: $cfg health on $endpoint"
exec python3 -m http.server --bind "${endpoint%:*}" --directory "$docroot" "${endpoint##*:}" 2>/dev/null
