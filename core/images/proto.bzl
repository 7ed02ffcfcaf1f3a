"""Compiles .proto files with the system protoc into one C++ library.

Bazel's own proto rules would need a protobuf source repository; the image
protos only need Debian's protoc and libprotobuf, so a genrule is enough.
"""

def cc_protos(name, srcs, deps = [], visibility = None):
    """One cc_library `name` with the generated code of every file in `srcs`."""
    bases = [s[:-len(".proto")] for s in srcs]
    hdrs = [b + ".pb.h" for b in bases]
    ccs = [b + ".pb.cc" for b in bases]
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = hdrs + ccs,
        cmd = ("/usr/bin/protoc -I$$(dirname $(location {first})) -I/usr/include " +
               "--cpp_out=$(@D) $(SRCS)").format(first = srcs[0]),
    )
    native.cc_library(
        name = name,
        srcs = ccs,
        hdrs = hdrs,
        # The generated code includes its siblings by bare name ("opts.pb.h").
        includes = ["."],
        copts = ["-Wno-unused-parameter"],
        deps = deps + ["//third_party:protobuf"],
        # crit finds message types by name in the generated pool, so every
        # generated file must be linked even when no code names it.
        alwayslink = True,
        visibility = visibility,
    )
