"""ucode_dependencies(): every repository ucode's targets need, for ucode's own WORKSPACE
and for a workspace that depends on ucode:

    local_repository(name = "ucode", path = "...")   # or http_archive
    load("@ucode//:deps.bzl", "ucode_dependencies")
    ucode_dependencies()

The repository must be named "ucode": programs find their runfiles (ucode-vmm) under it.
"""

def _ucode_shim_impl(ctx):
    # Links every entry of the directory holding `workspace_file` (ucode's
    # third_party/<name>) into this repository: a local_repository whose path is known only
    # as a label, because a consumer does not know where Bazel fetched @ucode.
    source = ctx.path(ctx.attr.workspace_file).dirname
    for entry in source.readdir():
        ctx.symlink(entry, entry.basename)

_ucode_shim = repository_rule(
    implementation = _ucode_shim_impl,
    attrs = {"workspace_file": attr.label(allow_single_file = True, mandatory = True)},
    local = True,
)

def _shim(name):
    # A workspace that already declares the real rules keeps them.
    if native.existing_rule(name) == None:
        _ucode_shim(
            name = name,
            workspace_file = Label("//third_party/%s:WORKSPACE" % name),
        )

def ucode_dependencies():
    """Declares @rules_cc, @rules_java, @remote_coverage_tools (offline stand-ins, see
    third_party/README.md) and @ucode_system (Debian's libraries, protoc and grpc_cpp_plugin
    under /usr, installed by tools/install-deps)."""

    # Bazel 4.2.3 asks for these even for a plain cc_test and would download them.
    _shim("rules_cc")
    _shim("rules_java")
    _shim("remote_coverage_tools")
    if native.existing_rule("ucode_system") == None:
        native.new_local_repository(
            name = "ucode_system",
            build_file = str(Label("//third_party:system.BUILD")),
            path = "/usr",
        )
