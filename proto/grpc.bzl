"""C++ code generation for protocol buffers (and gRPC services) with Debian's protoc.

Bazel 4.2.3's native proto rules want @com_google_protobuf from the network; Debian's
protoc and grpc_cpp_plugin (@ucode_system, declared by deps.bzl) do the same job offline.
"""

_PROTOC = Label("@ucode_system//:bin/protoc")
_GRPC_PLUGIN = Label("@ucode_system//:bin/grpc_cpp_plugin")

def ucode_cc_proto_library(name, src, deps = [], imports = [], grpc = False, visibility = None):
    """Generates <src>.pb.{h,cc} (and with grpc <src>.grpc.pb.{h,cc}) and a cc_library.

    imports: the .proto files src imports (their cc_library goes in deps).
    """
    base = src[:-len(".proto")]
    exts = [".pb.h", ".pb.cc"] + ([".grpc.pb.h", ".grpc.pb.cc"] if grpc else [])
    outs = [base + ext for ext in exts]

    # Imports and generated #includes are relative to the repository root, which is
    # external/<name> in the execroot when ucode is another workspace's dependency.
    root = Label("//:BUILD.bazel").workspace_root or "."
    native.genrule(
        name = name + "_codegen",
        srcs = [src] + imports,
        outs = outs,
        tools = [_PROTOC] + ([_GRPC_PLUGIN] if grpc else []),
        cmd = " ".join([
            "$(location %s)" % _PROTOC,
            "--proto_path=" + root,
            "--cpp_out=$(GENDIR)/" + root,
        ] + ([
            "--grpc_out=$(GENDIR)/" + root,
            "--plugin=protoc-gen-grpc=$(location %s)" % _GRPC_PLUGIN,
        ] if grpc else []) + [
            "$(location " + src + ")",
        ]),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@ucode_system//:grpc" if grpc else "@ucode_system//:protobuf"],
        visibility = visibility,
    )
