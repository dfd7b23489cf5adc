// halt: interrupts off, HLT forever. With the in-kernel irqchip (KVM_CREATE_IRQCHIP) the
// vCPU blocks inside KVM_RUN (kvm_vcpu_halt) and nothing but a signal to its thread gets
// it out: the hardest case for parking. Counts wake-ups in REC_ITERATIONS.
#include "vmm/guest/guest_record.h"

  .text
  .code64
  .globl _start
_start:
  cli
  mov $0x8b, %ecx
  rdmsr
  shl $32, %rdx
  or %rax, %rdx
  mov %rdx, REC_FIRST_REV(%rdi)
  mov %rdx, REC_CUR_REV(%rdi)
.Lhalt:
  hlt
  incq REC_ITERATIONS(%rdi)
  jmp .Lhalt
