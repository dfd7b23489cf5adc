#!/usr/bin/env bash
# Builds the test guest: Debian's linux-image-amd64 kernel plus a busybox initramfs that
# holds the virtio console modules and an agent binary, run by init.sh on the agent's
# virtio-serial port. The result is cached under a key made of every input's content, so
# a second call with the same inputs costs one hash pass.
#
# Usage:
#   build_initramfs.sh --agent PATH --out-dir DIR [--agent-arg ARG ...]
#                      [--port NAME] [--cache-dir DIR] [--no-install]
# Writes DIR/vmlinuz and DIR/initrd.img (hard links or copies of the cached files) and
# prints "kernel=DIR/vmlinuz" and "initrd=DIR/initrd.img".
#
# Exit codes: 0 built; 2 usage; 3 a needed Debian package is missing and could not be
# installed here (the message says which and how to install it: tools/install-deps).
set -euo pipefail

die() { echo "build_initramfs: $*" >&2; exit 1; }
missing() { echo "build_initramfs: $*" >&2; exit 3; }

agent="" out_dir="" port="org.qemu.guest_agent.0" cache_dir="" install=1
agent_args=()
while (($#)); do
  case "$1" in
    --agent) agent="$2"; shift 2 ;;
    --agent-arg) agent_args+=("$2"); shift 2 ;;
    --out-dir) out_dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --cache-dir) cache_dir="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    *) echo "usage: $0 --agent PATH --out-dir DIR [--agent-arg ARG ...] [--port NAME]" \
         "[--cache-dir DIR] [--no-install]" >&2; exit 2 ;;
  esac
done
[[ -n "$agent" && -n "$out_dir" ]] || { echo "build_initramfs: --agent and --out-dir are required" >&2; exit 2; }
[[ -f "$agent" ]] || die "agent binary $agent does not exist"

# Under `bazel run`/`bazel test` this file is a runfiles symlink into the source tree.
self="$(readlink -f "${BASH_SOURCE[0]}")"
here="$(dirname "$self")"
install_deps="${UCODE_INSTALL_DEPS:-$(readlink -f "$here/../../tools/install-deps" 2>/dev/null || true)}"

newest_kernel() {
  # Debian's kernel packages install /boot/vmlinuz-<ver> and /lib/modules/<ver>; take the
  # newest version that has both (version sort, as the kernel postinst hooks do).
  local v
  for v in $(ls /boot 2>/dev/null | sed -n 's/^vmlinuz-//p' | sort -rV); do
    if [[ -r "/boot/vmlinuz-$v" && -f "/lib/modules/$v/modules.dep" ]]; then
      echo "$v"; return 0
    fi
  done
  return 1
}

have_inputs() { newest_kernel >/dev/null && [[ -x /bin/busybox ]] && command -v cpio >/dev/null; }

if ! have_inputs; then
  if ((install)) && [[ -x "$install_deps" ]]; then
    echo "build_initramfs: kernel/busybox/cpio missing; running $install_deps" >&2
    "$install_deps" >&2 || true
  fi
  have_inputs || missing "need /boot/vmlinuz-* with /lib/modules (linux-image-amd64)," \
    "/bin/busybox (busybox-static) and cpio; install them with tools/install-deps as root"
fi
# /bin/busybox from the busybox (dynamic) package would not run in the initramfs.
! ldd /bin/busybox >/dev/null 2>&1 ||
  missing "/bin/busybox is dynamically linked; install busybox-static (tools/install-deps)"

kver="$(newest_kernel)"
kernel="/boot/vmlinuz-$kver"
moddir="/lib/modules/$kver"

# The modules the agent's port needs: virtio_console for the port, virtio_pci for the PCI
# transport QEMU's virtio-serial-pci device uses. modules.dep lists each module's full
# dependency closure, dependencies of a dependency after it, so loading that list in
# reverse and then the module itself is a valid order (the order modprobe uses).
wanted=(virtio_pci virtio_console)
order=()
add_module() {
  local rel="$1" m
  for m in "${order[@]}"; do [[ "$m" == "$rel" ]] && return 0; done
  order+=("$rel")
}
for name in "${wanted[@]}"; do
  line="$(grep -E "/${name}\.ko(\.[gx]z|\.zst)?:" "$moddir/modules.dep" || true)"
  [[ -n "$line" ]] || die "module $name not in $moddir/modules.dep"
  rel="${line%%:*}"
  read -r -a deps <<< "${line#*:}"
  for ((i = ${#deps[@]} - 1; i >= 0; i--)); do add_module "${deps[i]}"; done
  add_module "$rel"
done
for rel in "${order[@]}"; do
  case "$rel" in *.ko) ;; *) die "module $rel is compressed; busybox insmod needs plain .ko" ;; esac
done

inputs=("$self" "$here/init.sh" "$kernel" /bin/busybox "$agent")
for rel in "${order[@]}"; do inputs+=("$moddir/$rel"); done
key="$( { sha256sum "${inputs[@]}" | cut -d' ' -f1; printf '%s\n' "$port" "${agent_args[@]}" "${order[@]}"; } |
  sha256sum | cut -c1-24)"

if [[ -z "$cache_dir" ]]; then
  if [[ -n "${UCODE_GUEST_CACHE:-}" ]]; then cache_dir="$UCODE_GUEST_CACHE"
  elif [[ -n "${TEST_TMPDIR:-}" ]]; then cache_dir="$TEST_TMPDIR/linux_guest_cache"
  else cache_dir="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/ucode/linux_guest"
  fi
fi
entry="$cache_dir/$key"

if [[ ! -f "$entry/initrd.img" ]]; then
  mkdir -p "$cache_dir"
  work="$(mktemp -d "$cache_dir/.build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  root="$work/root"
  mkdir -p "$root"/{bin,sbin,etc/ucode-guest,proc,sys,dev,run,tmp,lib/modules}
  cp /bin/busybox "$root/bin/busybox"
  install -m 0755 "$here/init.sh" "$root/init"
  install -m 0755 "$agent" "$root/sbin/ucode-agent"
  for rel in "${order[@]}"; do
    mkdir -p "$root/lib/modules/$(dirname "$rel")"
    cp "$moddir/$rel" "$root/lib/modules/$rel"
  done
  printf '%s\n' "${order[@]}" > "$root/etc/ucode-guest/modules.order"
  printf '%s\n' "$port" > "$root/etc/ucode-guest/port"
  printf '%s ' "${agent_args[@]}" > "$root/etc/ucode-guest/agent-args"
  # newc is the only cpio format the kernel unpacks (Documentation/driver-api/
  # early-userspace/buffer-format.rst). /dev/console comes from the kernel's built-in
  # default initramfs (usr/default_cpio_list), unpacked before this one.
  (cd "$root" && find . -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner=0:0 --quiet) | gzip -1 > "$work/initrd.img"
  cp "$kernel" "$work/vmlinuz"
  echo "$kver" > "$work/kernel-version"
  mkdir -p "$entry.tmp.$$"
  mv "$work/initrd.img" "$work/vmlinuz" "$work/kernel-version" "$entry.tmp.$$/"
  # Rename makes the entry appear whole to a concurrent builder with the same key.
  mv -T "$entry.tmp.$$" "$entry" 2>/dev/null || rm -rf "$entry.tmp.$$"
fi

mkdir -p "$out_dir"
for f in vmlinuz initrd.img; do
  rm -f "$out_dir/$f"
  ln "$entry/$f" "$out_dir/$f" 2>/dev/null || cp "$entry/$f" "$out_dir/$f"
done
echo "kernel=$out_dir/vmlinuz"
echo "initrd=$out_dir/initrd.img"
