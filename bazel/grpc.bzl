"""One macro for "proto + gRPC C++ library", driven by Debian's protoc.

cc_grpc_proto_library(name = "x_proto", srcs = ["x.proto"], deps = [":y_proto"])
creates:
  :x_proto        cc_library with x.pb.h / x.grpc.pb.h (include "proto/x.pb.h")
  :x_proto_files  filegroup with the .proto files (this one's and its deps'),
                  so dependent protos can import them.
"""

def _label_with_suffix(dep, suffix):
    if ":" in dep:
        return dep + suffix
    return dep + ":" + dep.split("/")[-1] + suffix

def cc_grpc_proto_library(name, srcs, deps = [], grpc = True, visibility = None, testonly = False):
    dep_files = [_label_with_suffix(d, "_files") for d in deps]
    native.filegroup(
        name = name + "_files",
        srcs = srcs + dep_files,
        visibility = visibility,
        testonly = testonly,
    )

    pkg = native.package_name()
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]

    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin "
    native.genrule(
        name = name + "_gen",
        srcs = srcs + dep_files,
        outs = outs,
        cmd = "/usr/bin/protoc -I. --cpp_out=$(GENDIR) " + grpc_flags +
              " ".join([(pkg + "/" + s) if pkg else s for s in srcs]),
        testonly = testonly,
    )

    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@system//:grpc", "@system//:protobuf"],
        visibility = visibility,
        testonly = testonly,
    )
