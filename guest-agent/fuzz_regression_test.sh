#!/bin/sh
# Replays fuzz seeds and kept crash inputs (guest-agent/testdata) through the
# fuzz target built without libFuzzer; any crash or abort fails the test.
# A directory that holds no file yet is absent from runfiles: skip it.
set -eu
fuzzer="$1"
shift
inputs=""
for dir in "$@"; do
  if [ -d "$dir" ]; then inputs="$inputs $dir"; fi
done
# shellcheck disable=SC2086
exec "$fuzzer" $inputs
