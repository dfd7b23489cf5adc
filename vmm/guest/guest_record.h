// Layout of the per-vCPU record a guest program keeps in guest memory, shared by the
// assembly programs (through the C preprocessor) and the VMM. Plain #defines only, so
// that `gcc -x assembler-with-cpp` can include it.
//
// The VMM passes each vCPU the guest-physical address of its own record in RDI and its
// index in RSI (KVM_SET_REGS before the first KVM_RUN). Records are GUEST_RECORD_SIZE
// apart starting at GUEST_RECORD_BASE. Every field is a little-endian u64.
#ifndef UCODE_VMM_GUEST_GUEST_RECORD_H_
#define UCODE_VMM_GUEST_GUEST_RECORD_H_

#define GUEST_CODE_BASE 0x10000     /* flat binary loaded here, entry = first byte */
#define GUEST_RECORD_BASE 0x100000  /* 1 MiB */
#define GUEST_RECORD_SIZE 256

#define REC_ITERATIONS 0x00   /* loop iterations (halt: wake-ups) */
#define REC_LAST_TSC 0x08     /* TSC read by the latest iteration */
#define REC_MAX_GAP 0x10      /* largest TSC delta between consecutive reads in the */
                              /* window the VMM opened by zeroing it (at each park, or */
                              /* on request), leaving out the delta that spans a park */
#define REC_MAX_GAP_AT 0x18   /* TSC at the end of that gap */
#define REC_CUR_REV 0x20      /* latest MSR 0x8B value read */
#define REC_FIRST_REV 0x28    /* MSR 0x8B value read at start */
#define REC_BACKWARDS 0x30    /* times a read was lower than the previous one */
#define REC_NCHANGES 0x38     /* revision changes seen (may exceed the slots) */
#define REC_CHANGES 0x40      /* {tsc, msr value, iteration} records, 24 bytes each */
#define REC_CHANGE_SIZE 24
#define REC_MAX_CHANGES 6
#define REC_PARK_MARK 0xD0    /* set by the VMM while parked; the guest clears it ... */
#define REC_PARK_GAP 0xD8     /* ... and stores here the TSC gap that spans the park */
#define REC_WINDOW_GAP_AT_PARK 0xE0 /* VMM, at each park: REC_MAX_GAP of the window the */
                                    /* park closed (the guest's gaps without any hold) */

/* Port I/O the guests use (KVM_EXIT_IO, handled in the VMM's exit loop). */
#define GUEST_PORT_CONSOLE 0xE9   /* debug console: one byte per OUT */
#define GUEST_PORT_HOSTCALL 0x500 /* 32-bit OUT: host call number, logged */
#define GUEST_PORT_STORM 0x501    /* exit-storm: ignored by the VMM */

/* How often (in iterations, a power of two) the spin programs read MSR 0x8B. */
#define GUEST_REV_READ_MASK 15

#endif  /* UCODE_VMM_GUEST_GUEST_RECORD_H_ */
