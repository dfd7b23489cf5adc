"""ucode_rehearsal_test: checks a microcode release against every CPU SKU of a fleet.

    load("@ucode//:rehearsal.bzl", "ucode_rehearsal_test")

    ucode_rehearsal_test(
        name = "intel_20251111_rehearsal_test",
        images = ["@intel_release//:intel-ucode"],  # a release's files (or its directory)
        fleet = "fleet.txt",                        # one SKU per line (host/rehearsal/fleet.h)
        baseline_images = [...],                    # optional: the release the fleet runs today
    )

The test runs @ucode//host/rehearsal:ucode-rehearsal: each SKU on ucode's emulated host,
staged and unstaged; it fails, naming the SKU and the reason, when an image fails
validation, a SKU would be downgraded, the min-rev rule refuses a SKU's running revision,
the modelled activation window exceeds the SKU's deadline, or a SKU that had an update in
baseline_images has none. The per-SKU table goes to the test log, JSON to
TEST_UNDECLARED_OUTPUTS_DIR/rehearsal.json.

expected_failure = "TEXT" inverts the verdict: the test passes only if the rehearsal fails
and one of its failure lines ("<sku>: <check>: ...") contains TEXT.
"""

def _cxx20_impl(settings, attr):
    # ucode is C++20; the consumer's own flags may be older. Only the rehearsal program
    # (and what it links) is built with the added flag.
    opts = settings["//command_line_option:cxxopt"]
    if "-std=c++20" not in opts:
        opts = opts + ["-std=c++20"]
    return {"//command_line_option:cxxopt": opts}

_cxx20 = transition(
    implementation = _cxx20_impl,
    inputs = ["//command_line_option:cxxopt"],
    outputs = ["//command_line_option:cxxopt"],
)

def _shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"

def _impl(ctx):
    # Tests run from the main workspace's runfiles directory, where every file (ours
    # or an external repository's, "../<repo>/...") sits at its short_path.
    tool = ctx.executable._tool
    args = [tool.short_path, "--fleet", ctx.file.fleet.short_path]
    if ctx.attr.expected_failure:
        args += ["--expect-failure", ctx.attr.expected_failure]
    args += ["--images"] + [f.short_path for f in ctx.files.images]
    if ctx.files.baseline_images:
        args += ["--baseline"] + [f.short_path for f in ctx.files.baseline_images]
    script = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(
        output = script,
        content = "#!/bin/sh\nexec " + " ".join([_shell_quote(a) for a in args]) + "\n",
        is_executable = True,
    )
    tool_target = ctx.attr._tool[0] if type(ctx.attr._tool) == "list" else ctx.attr._tool
    runfiles = ctx.runfiles(
        files = [tool, ctx.file.fleet] + ctx.files.images + ctx.files.baseline_images,
    ).merge(tool_target[DefaultInfo].default_runfiles)
    return [DefaultInfo(executable = script, runfiles = runfiles)]

_ucode_rehearsal_test = rule(
    implementation = _impl,
    test = True,
    attrs = {
        "images": attr.label_list(
            allow_files = True,
            mandatory = True,
            doc = "The release: microcode files, or a directory of them (intel-ucode/).",
        ),
        "fleet": attr.label(
            allow_single_file = True,
            mandatory = True,
            doc = "One SKU per line: NAME SIGNATURE PLATFORM_ID REVISION PxCxT " +
                  "[hosts=N] [deadline=DURATION].",
        ),
        "baseline_images": attr.label_list(
            allow_files = True,
            doc = "The release the fleet runs today; a SKU it updates must stay updated.",
        ),
        "expected_failure": attr.string(
            doc = "If set, pass only when the rehearsal fails with a failure containing this.",
        ),
        "_tool": attr.label(
            default = Label("//host/rehearsal:ucode-rehearsal"),
            executable = True,
            cfg = _cxx20,
        ),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)

def ucode_rehearsal_test(name, size = "small", **kwargs):
    # A rehearsal takes about a second per few SKUs: small unless the caller says otherwise.
    _ucode_rehearsal_test(name = name, size = size, **kwargs)
