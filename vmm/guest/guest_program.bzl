"""guest_program: assemble one .S guest program into a flat binary `<name>.bin`."""

def guest_program(name, src, defines = []):
    flags = " ".join(["-D" + d for d in defines])

    # The .S files include "vmm/guest/guest_record.h" from the repository root, which is
    # external/<name> when ucode is another workspace's dependency.
    root = Label("//:BUILD.bazel").workspace_root or "."
    native.genrule(
        name = name + "_bin",
        srcs = [src, "guest_record.h"],
        outs = [name + ".bin"],
        # gcc runs cpp on .S (guest_record.h is shared with the VMM); objcopy keeps only
        # .text, so the entry point is the first byte and the code must be position
        # independent (it is: relative jumps only, no data section).
        cmd = ("gcc -c -x assembler-with-cpp -I%s %s $(location %s) -o $@.o && " +
               "objcopy -O binary -j .text $@.o $@ && rm -f $@.o") % (root, flags, src),
    )
