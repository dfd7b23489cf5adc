#!/bin/sh
# Replays kept fuzzer findings through the parser (see image_parser_fuzzer.cc's main).
set -eu
"$1" "$2"
