#!/usr/bin/env bash
# Prints domain.xml.in with its placeholders filled.
# Usage: render_domain_xml.sh --name NAME --kernel PATH --initrd PATH --console-log PATH
#                             [--memory-mib 192] [--vcpus 1]
set -euo pipefail

name="" kernel="" initrd="" console_log="" memory_mib=192 vcpus=1
while (($#)); do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --kernel) kernel="$2"; shift 2 ;;
    --initrd) initrd="$2"; shift 2 ;;
    --console-log) console_log="$2"; shift 2 ;;
    --memory-mib) memory_mib="$2"; shift 2 ;;
    --vcpus) vcpus="$2"; shift 2 ;;
    *) echo "render_domain_xml: unknown argument $1" >&2; exit 2 ;;
  esac
done
for v in name kernel initrd console_log; do
  [[ -n "${!v}" ]] || { echo "render_domain_xml: --${v//_/-} is required" >&2; exit 2; }
done
# Values land in XML text and attributes and in a sed replacement: refuse what would
# need escaping rather than escaping it (these are test-controlled paths and names).
for v in "$name" "$kernel" "$initrd" "$console_log" "$memory_mib" "$vcpus"; do
  [[ "$v" =~ ^[A-Za-z0-9_./=+-]+$ ]] || { echo "render_domain_xml: unsafe value '$v'" >&2; exit 2; }
done

template="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/domain.xml.in"
sed -e "s|@NAME@|$name|g" -e "s|@KERNEL@|$kernel|g" -e "s|@INITRD@|$initrd|g" \
  -e "s|@CONSOLE_LOG@|$console_log|g" -e "s|@MEMORY_MIB@|$memory_mib|g" \
  -e "s|@VCPUS@|$vcpus|g" "$template"
