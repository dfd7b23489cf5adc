// spin / cli-spin / exit-storm / halt: one source, four builds (-DGUEST_CLI,
// -DGUEST_EXIT_STORM, -DGUEST_HALT).
// Runs in 64-bit long mode set up by the VMM (no stack, no IDT, no calls). Per iteration:
// read the TSC, keep the gap that spans the last park (the blackout the guest itself sees
// when the host holds the vCPU out of guest mode) and, apart from it, the largest gap
// between consecutive reads in the VMM's window (what ordinary scheduling costs), count; every
// GUEST_REV_READ_MASK+1 iterations read MSR 0x8B (IA32_BIOS_SIGN_ID: revision in EDX,
// SDM Vol. 3A 10.11.7) and record the TSC and iteration of every change and any step
// backwards.
//
// Registers: rdi = record, r8 = previous TSC, r9 = iterations, r12 = current MSR value.
//
// halt: interrupts off, HLT forever. With the in-kernel irqchip (KVM_CREATE_IRQCHIP) the
// vCPU blocks inside KVM_RUN (kvm_vcpu_halt) and nothing but a signal to its thread gets
// it out: the hardest case for parking. Counts wake-ups in REC_ITERATIONS.
#include "vmm/guest/guest_record.h"

  .text
  .code64
  .globl _start
_start:
#if defined(GUEST_CLI) || defined(GUEST_HALT)
  cli
#endif
  mov $0x8b, %ecx
  rdmsr
  shl $32, %rdx
  or %rax, %rdx
  mov %rdx, REC_FIRST_REV(%rdi)
  mov %rdx, REC_CUR_REV(%rdi)
#ifdef GUEST_HALT
.Lhalt:
  hlt
  incq REC_ITERATIONS(%rdi)
  jmp .Lhalt
#else
  mov %rdx, %r12
  rdtsc
  shl $32, %rdx
  or %rax, %rdx
  mov %rdx, %r8
  xor %r9, %r9

.Lloop:
  rdtsc
  shl $32, %rdx
  or %rax, %rdx
  mov %rdx, %r10
  sub %r8, %r10
  mov %rdx, %r8
  cmpq $0, REC_PARK_MARK(%rdi)
  je 4f
  mov %r10, REC_PARK_GAP(%rdi)
  movq $0, REC_PARK_MARK(%rdi)
  jmp 1f  /* the gap that spans a park belongs to no window */
4:
  cmp REC_MAX_GAP(%rdi), %r10
  jbe 1f
  mov %r10, REC_MAX_GAP(%rdi)
  mov %r8, REC_MAX_GAP_AT(%rdi)
1:
  inc %r9
  mov %r9, REC_ITERATIONS(%rdi)
  mov %r8, REC_LAST_TSC(%rdi)
#ifdef GUEST_EXIT_STORM
  mov $GUEST_PORT_STORM, %dx
  out %al, %dx
#endif
  test $GUEST_REV_READ_MASK, %r9
  jnz .Lloop

  mov $0x8b, %ecx
  rdmsr
  shl $32, %rdx
  or %rax, %rdx
  cmp %r12, %rdx
  je .Lloop
  jae 2f
  incq REC_BACKWARDS(%rdi)
2:
  mov %rdx, %r12
  mov %rdx, REC_CUR_REV(%rdi)
  mov REC_NCHANGES(%rdi), %rax
  cmp $REC_MAX_CHANGES, %rax
  jae 3f
  lea (%rax,%rax,2), %rax  /* * REC_CHANGE_SIZE (24) */
  shl $3, %rax
  mov %r8, REC_CHANGES(%rdi,%rax)
  mov %rdx, REC_CHANGES+8(%rdi,%rax)
  mov %r9, REC_CHANGES+16(%rdi,%rax)
3:
  incq REC_NCHANGES(%rdi)
  jmp .Lloop
#endif  // GUEST_HALT
