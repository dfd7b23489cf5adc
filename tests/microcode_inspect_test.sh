#!/usr/bin/env bash
# `ucodectl inspect` behaviour on generated images: verdicts, exit status, --json, --cpu.
# Usage: $0 PATH/TO/ucodectl PATH/TO/make_fuzz_seeds
set -euo pipefail
ucodectl="$1"
seeds="$2"
dir="${TEST_TMPDIR:-$(mktemp -d)}/inspect"
mkdir -p "$dir/good"
"$seeds" "$dir/good"
fail() { echo "FAIL: $*" >&2; exit 1; }

# All generated images are valid: exit 0, one line per image (5 single + the bundle of those 5).
out="$("$ucodectl" inspect "$dir/good")" || fail "valid directory exited $?"
[[ $(grep -c ' valid$' <<<"$out") -eq 10 ]] || fail "want 10 valid lines, got: $out"

# --json: one ucode.v1.InspectImageResponse, each image with the fields the issue names.
json="$("$ucodectl" inspect --json "$dir/good/generated-00")"
[[ ${json:0:1} == '{' && ${json: -1} == '}' ]] || fail "want one JSON object: $json"
for key in images signature platform_flags date revision total_size min_req_revision valid path; do
  grep -q "\"$key\":" <<<"$json" || fail "JSON lacks $key: $json"
done

# A corrupted copy: exit 1 and the failed check is named.
cp "$dir/good/generated-00" "$dir/bad"
printf '\x55' | dd of="$dir/bad" bs=1 seek=200 conv=notrunc status=none
rc=0; out="$("$ucodectl" inspect "$dir/good/generated-01" "$dir/bad")" || rc=$?
[[ $rc -eq 1 ]] || fail "corrupt image exited $rc"
grep -q 'INVALID: data checksum: sum 0x' <<<"$out" || fail "no data checksum verdict: $out"

# --cpu: generated images are sig 0x806f8 pf 0x87 rev 0x2b000001 min_rev 0x2b000000.
out="$("$ucodectl" inspect --cpu 0x806f8,0x80,0x2b000000 "$dir/good/generated-00")"
grep -q 'generated-00@0x0: selected: matches primary signature' <<<"$out" || fail "not selected: $out"
out="$("$ucodectl" inspect --cpu 0x806f8,0x80,0x2a000000 "$dir/good/generated-00")"
grep -q 'below min_rev 0x2b000000' <<<"$out" || fail "min_rev not enforced: $out"
grep -q 'nothing to load' <<<"$out" || fail "selected despite min_rev: $out"
out="$("$ucodectl" inspect --force-minrev --cpu 0x806f8,0x80,0x2a000000 "$dir/good/generated-00")"
grep -q 'nothing to load' <<<"$out" || fail "--force-minrev (kernel meaning: enforce) loaded: $out"
out="$("$ucodectl" inspect --ignore-minrev --cpu 0x806f8,0x80,0x2a000000 "$dir/good/generated-00")"
grep -q 'min-rev rule ignored' <<<"$out" || fail "--ignore-minrev not honoured: $out"
"$ucodectl" inspect --ignore-minrev --force-minrev "$dir/good/generated-00" >/dev/null 2>&1 \
  && fail "--ignore-minrev with --force-minrev accepted"
out="$("$ucodectl" inspect --cpu 0x806f8,0x10,0x2b000000 "$dir/good/generated-00")"
grep -q 'does not match' <<<"$out" || fail "pf mismatch not explained: $out"

# Usage errors exit 2.
rc=0; "$ucodectl" inspect >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "no PATH exited $rc"
rc=0; "$ucodectl" inspect --cpu 0x806f8,0x3 "$dir/bad" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "two-bit PF exited $rc"
echo PASS
