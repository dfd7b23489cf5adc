#!/usr/bin/env bash
# ucodectl against hostile inputs, as a local user could hand them to root (sudo):
#  - a FIFO (inspect, load, --host-config) is refused at once instead of blocking forever;
#  - `inspect DIR` is bounded (30 x 60 MiB files once took 2.2 GB of memory);
#  - --host values are range-checked (signature=0x1ffffffff was silently truncated);
#  - --host-config errors name the line, never its text (a line of /etc/shadow was printed);
#  - the emulated host's shape is capped (64x512x8 ran a load for over 2 minutes).
# Usage: $0 PATH/TO/ucodectl PATH/TO/make_fuzz_seeds
set -euo pipefail
ucodectl="$1"
dir="$(mktemp -d "${TEST_TMPDIR:-/tmp}/limits.XXXXXX")"
mkdir "$dir/seeds" && "$2" "$dir/seeds" >/dev/null
image="$dir/seeds/generated-00"
fail() { echo "FAIL: $*" >&2; exit 1; }
# Runs ucodectl with a generous bound; 124 (the bound hit) means it blocked.
run() { rc=0; timeout 60 "$ucodectl" "$@" >"$dir/out" 2>"$dir/err" || rc=$?; }

mkfifo "$dir/fifo"
for args in "inspect $dir/fifo" "load $dir/fifo" "load $image --host-config $dir/fifo" \
            "--server unix:$dir/none.sock apply $dir/fifo"; do
  # shellcheck disable=SC2086
  run $args
  [[ $rc -ne 124 ]] || fail "'$args' blocked on the FIFO"
  [[ $rc -ne 0 ]] || fail "'$args' accepted a FIFO"
  grep -q "not a regular file" "$dir/err" || fail "'$args': $(cat "$dir/err")"
done

# Sparse files: no disk, but 60 MiB each as far as ucodectl can tell.
mkdir "$dir/big"
for i in $(seq 30); do truncate -s 60M "$dir/big/f$i"; done
rc=0; /usr/bin/time -f "%M" -o "$dir/rss" timeout 60 "$ucodectl" inspect "$dir/big" \
  >"$dir/out" 2>"$dir/err" || rc=$?
[[ $rc -eq 1 ]] || fail "inspect of 30 x 60 MiB exited $rc"
grep -q "exceeds the limit of 16777216 bytes" "$dir/err" || fail "no per-file limit: $(head -3 "$dir/err")"
[[ $(wc -l <"$dir/out") -eq 0 ]] || fail "images listed from oversized files"
# 5 x 15 MiB: each under the per-file limit, together over the 64 MiB total.
mkdir "$dir/many"
for i in $(seq 5); do truncate -s 15M "$dir/many/f$i"; done
rc=0; /usr/bin/time -f "%M" -o "$dir/rss" timeout 60 "$ucodectl" inspect "$dir/many" \
  >"$dir/out" 2>"$dir/err" || rc=$?
[[ $rc -eq 1 ]] || fail "inspect over the total exited $rc"
grep -q "inputs over 64 MiB in total: stopped at $dir/many/f5" "$dir/err" ||
  fail "no total limit: $(tail -3 "$dir/err")"
rss_kib=$(tail -1 "$dir/rss")
[[ $rss_kib -lt 400000 ]] || fail "inspect over the total used ${rss_kib} KiB"

run load "$image" --host signature=0x1ffffffff
[[ $rc -ne 0 ]] || fail "signature=0x1ffffffff accepted"
grep -q "signature: above the maximum 0xffffffff" "$dir/err" || fail "range: $(cat "$dir/err")"
run load "$image" --host packages=0x100000000
[[ $rc -ne 0 ]] || fail "packages=0x100000000 accepted"

# A file only root reads, handed to ucodectl running as root (sudo).
printf 'root:$6$s3cr3tHash:19000:0:99999:7:::\n' >"$dir/shadow"
chmod 0600 "$dir/shadow"
run load "$image" --host-config "$dir/shadow"
[[ $rc -ne 0 ]] || fail "a shadow file parsed as a host config"
grep -q "line 1: expected 'key = value'" "$dir/err" || fail "no line number: $(cat "$dir/err")"
! grep -q "s3cr3t" "$dir/err" "$dir/out" || fail "the file's content was printed: $(cat "$dir/err")"
printf 'packages = 2\ns3cr3t = 1\n' >"$dir/shadow"
run load "$image" --host-config "$dir/shadow"
grep -q "line 2: unknown key" "$dir/err" || fail "unknown key: $(cat "$dir/err")"
! grep -q "s3cr3t" "$dir/err" || fail "an unknown key was printed: $(cat "$dir/err")"
printf 'revision = s3cr3t\n' >"$dir/shadow"
run load "$image" --host-config "$dir/shadow"
grep -q "line 1: revision: not a number" "$dir/err" || fail "bad value: $(cat "$dir/err")"
! grep -q "s3cr3t" "$dir/err" || fail "a value was printed: $(cat "$dir/err")"

run load "$image" --host packages=64 --host cores=512 --host threads=8
[[ $rc -ne 0 ]] || fail "a 262144-CPU host accepted"
grep -q "over the limit of 4096" "$dir/err" || fail "shape cap: $(cat "$dir/err")"
run load "$image" --host packages=16 --host cores=128 --host threads=2
[[ $rc -eq 0 ]] || fail "the largest allowed shape failed: $(cat "$dir/err")"
echo PASS
