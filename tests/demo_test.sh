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
assert r["ok"] is True and r["mode"] == "UPDATE_MODE_STRICT" and r["last_step"] == "STEP_DONE", r
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

# 4. A local user's trap: the demo's log directory used to be /tmp/ucode-demo-<pid>, an
# existing one was accepted and vmN.log followed symlinks, so root wrote into a file the
# user pointed it at. The user (uid 65534, a real unprivileged process) plants the
# directory for the pid the demo will run as (exec keeps it) with vm0.log -> a path in a
# root-only directory; the demo must neither create that file nor touch the trap.
if command -v setpriv >/dev/null; then
  trap_tmp="$(mktemp -d /tmp/ucode-demo-trap.XXXXXX)"
  chmod 1777 "$trap_tmp"
  mkdir -m 0700 "$dir/secret"; secret="$dir/secret/planted"
  fifo="$dir/go"; mkfifo "$fifo"
  ( read -r _ <"$fifo"; TMPDIR="$trap_tmp" exec "$ucodectl" demo --json --vms 1 --vcpus 1 ) \
    >"$dir/trap.json" 2>"$dir/trap.err" &
  pid=$!
  setpriv --reuid=65534 --regid=65534 --clear-groups sh -c \
    "mkdir -m 0777 '$trap_tmp/ucode-demo-$pid' && ln -s '$secret' '$trap_tmp/ucode-demo-$pid/vm0.log'" ||
    fail "could not plant the trap as uid 65534"
  echo go >"$fifo"
  rc=0; wait "$pid" || rc=$?
  [[ $rc -eq 0 ]] || fail "demo beside a planted trap exited $rc: $(cat "$dir/trap.err")"
  [[ ! -e "$secret" ]] || fail "root created $secret through the planted symlink"
  [[ "$(ls -A "$trap_tmp/ucode-demo-$pid" 2>&1)" == vm0.log ]] ||
    fail "the trap was used: $(ls -lA "$trap_tmp/ucode-demo-$pid" 2>&1)"
  no_vmm_left "the trap run"
  rm -rf "$trap_tmp"
else
  echo "SKIP 4: no setpriv"
fi
# 5. The activation model predicts 3 s, the VMs' dead-man releases them after 2 s: parking
# them would hand the guests the new microcode with the old view. Refused before any park.
rc=0; "$ucodectl" demo --vms 1 --vcpus 1 --host activation_fixed_us=3000000 \
  >"$dir/deadman.out" 2>"$dir/deadman.err" || rc=$?
[[ $rc -eq 1 ]] || fail "demo past the dead-man exited $rc: $(cat "$dir/deadman.err")"
grep -q "predicted activation 3\.0" "$dir/deadman.out" "$dir/deadman.err" ||
  fail "no prediction named: $(cat "$dir/deadman.out" "$dir/deadman.err")"
grep -q "dead-man deadline 2s" "$dir/deadman.out" "$dir/deadman.err" ||
  fail "no dead-man named: $(cat "$dir/deadman.out" "$dir/deadman.err")"
! grep -q "PARKED" "$dir/deadman.err" || fail "VMs were parked: $(cat "$dir/deadman.err")"
no_vmm_left "the refused demo"
echo PASS
