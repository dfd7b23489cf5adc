#!/usr/bin/env bash
# `ucodectl demo` as an operator runs it: the JSON report, and no ucode-vmm process left
# behind, neither after a normal run nor after SIGINT in the middle of one.
# Usage: $0 PATH/TO/ucodectl PATH/TO/ucode-vmm
set -euo pipefail
ucodectl="$1"
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "SKIP: /dev/kvm unavailable"; exit 0; }
dir="$(mktemp -d "${TEST_TMPDIR:-/tmp}/demo.XXXXXX")"
# A private copy of the VMM, so that pgrep finds ours and nobody else's.
cp "$2" "$dir/ucode-vmm"
export UCODE_VMM="$dir/ucode-vmm"
fail() { echo "FAIL: $*" >&2; exit 1; }
ours() { pgrep -f "^$dir/ucode-vmm" || true; }
no_vmm_left() {
  for _ in $(seq 100); do [[ -z "$(ours)" ]] && return 0; sleep 0.05; done
  fail "ucode-vmm processes left behind after $1: $(ours)"
}

# 1. A whole run, strict mode, JSON.
"$ucodectl" demo --json --vms 3 --vcpus 2 >"$dir/report.json" 2>"$dir/stderr" ||
  fail "demo exited $?: $(cat "$dir/stderr")"
no_vmm_left "a normal run"
python3 - "$dir/report.json" <<'PY' || fail "report check: $(cat "$dir/report.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True and r["mode"] == "strict" and r["last_step"] == "DONE", r
img = r["image"]
assert img["new_revision"] == img["old_revision"] + 1, img
assert r["staging"]["staged"] == 2, r["staging"]
h = r["host"]
assert h["cpus"] == 16 and h["primaries"] == 8 and h["siblings"] == 8 and h["verify"] == "ok", h
z = r["rendezvous"]
assert z["vms"] == 3 and z["vcpus"] == 6, z
# Each figure is truncated to microseconds on its own: allow 1 us of rounding.
assert abs(z["overhead_us"] - (z["held_us"] - h["activation_window_us"])) <= 1, (z, h)
assert z["overhead_us"] >= 0, z
assert len(r["vms"]) == 3
for vm in r["vms"]:
    assert vm["revision_before"] == img["old_revision"], vm
    assert vm["revision_after"] == img["new_revision"], vm
    assert vm["view"] == "verified" and vm["backwards"] == 0, vm
    assert vm["time_parked_us"] <= z["held_us"], (vm, z)
    assert "guest_blackout_us" in vm and "baseline_max_gap_us" in vm, vm
PY

# 2. Fast mode, human output.
"$ucodectl" demo --vms 2 --vcpus 1 --mode fast >"$dir/report.txt" 2>"$dir/stderr" ||
  fail "fast demo exited $?: $(cat "$dir/stderr")"
grep -q "fast mode: OK" "$dir/report.txt" || fail "fast report: $(cat "$dir/report.txt")"
grep -q "RELEASED" "$dir/stderr" || fail "no progress lines: $(cat "$dir/stderr")"
no_vmm_left "a fast run"

# 3. SIGINT mid-demo: exit 130, nothing left. The signal goes in as soon as the first VMM
# exists; if a fast machine finished before it landed, try again.
interrupted=0
for attempt in 1 2 3 4 5; do
  "$ucodectl" demo --vms 8 --vcpus 2 >"$dir/int.out" 2>"$dir/int.err" &
  pid=$!
  for _ in $(seq 2000); do [[ -n "$(ours)" ]] && break; sleep 0.002; done
  kill -INT "$pid" 2>/dev/null || true
  rc=0; wait "$pid" || rc=$?
  no_vmm_left "SIGINT (attempt $attempt, exit $rc)"
  echo "SIGINT attempt $attempt: exit $rc"
  if [[ $rc -eq 130 ]]; then interrupted=1; break; fi
  [[ $rc -eq 0 ]] || fail "interrupted demo exited $rc: $(cat "$dir/int.err")"
done
[[ $interrupted -eq 1 ]] || fail "SIGINT never landed mid-demo"
grep -q "stopping every VM" "$dir/int.err" || fail "no interrupt message: $(cat "$dir/int.err")"
echo PASS
