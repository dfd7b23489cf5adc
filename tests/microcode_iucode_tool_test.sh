#!/usr/bin/env bash
# For every file of the Intel 20251111 release, the set of (signature, pf mask, date,
# revision, size) rows `ucodectl inspect` lists, with each extended signature as its own
# row, must equal the set `iucode_tool -l` lists. Usage: $0 PATH/TO/ucodectl
set -euo pipefail
ucodectl="$1"

if [[ ! -x /usr/sbin/iucode_tool ]]; then
  echo "iucode_tool missing: installing Debian's iucode-tool" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iucode-tool >/dev/null
fi

# This script's runfile is a symlink into the source tree; the release sits beside the
# workspace at ../shared/data.
workspace="$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")"
release="${UCODE_MICROCODE_RELEASE_DIR:-$workspace/../shared/data/intel-microcode-20251111/intel-ucode}"
if [[ ! -d "$release" ]]; then
  echo "SKIP: release directory $release not found"
  exit 0
fi

# Hex without 0x and leading zeros, so both tools' spellings compare equal.
ours() {
  "$ucodectl" inspect "$1" | awk '
    function h(x) { x = tolower(x); sub(/^0x0*/, "", x); return x == "" ? "0" : x }
    {
      for (i = 1; i <= NF; i++) f[$i] = $(i + 1)
      date = $6; tail = h(f["rev"]) " " f["size"]
      print h(f["sig"]), h(f["pf"]), date, tail
      if (f["ext"] != "-") {
        n = split(f["ext"], ext, ",")
        for (k = 1; k <= n; k++) { split(ext[k], sp, "/"); print h(sp[1]), h(sp[2]), date, tail }
      }
      delete f
    }' | sort -u
}
theirs() {
  /usr/sbin/iucode_tool -l "$1" 2>&1 | awk '
    function h(x) { x = tolower(x); sub(/,$/, "", x); sub(/^0x0*/, "", x); return x == "" ? "0" : x }
    / sig 0x/ { d = $6; sub(/,$/, "", d); print h($3), h($5), d, h($8), $10 }' | sort -u
}

files=0
failed=0
for f in "$release"/*; do
  [[ -f "$f" ]] || continue
  files=$((files + 1))
  a="$(ours "$f")"
  b="$(theirs "$f")"
  if [[ -z "$b" || "$a" != "$b" ]]; then
    failed=$((failed + 1))
    echo "MISMATCH $(basename "$f"):"
    diff <(echo "$a") <(echo "$b") | sed 's/^/  /' || true
  fi
done
echo "compared $files files against iucode_tool -l; $failed mismatched"
[[ $files -gt 0 && $failed -eq 0 ]]
