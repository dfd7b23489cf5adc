// Byte arrays generated from the .S programs (see BUILD.bazel: guest_blobs_cc).
#ifndef UCODE_VMM_GUEST_GUEST_BLOBS_H_
#define UCODE_VMM_GUEST_GUEST_BLOBS_H_

namespace ucode::guest {
extern const unsigned char k_spin[];
extern const unsigned long k_spin_size;
extern const unsigned char k_cli_spin[];
extern const unsigned long k_cli_spin_size;
extern const unsigned char k_exit_storm[];
extern const unsigned long k_exit_storm_size;
extern const unsigned char k_halt[];
extern const unsigned long k_halt_size;
}  // namespace ucode::guest

#endif  // UCODE_VMM_GUEST_GUEST_BLOBS_H_
