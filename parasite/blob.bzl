"""pie_blob: freestanding x86-64 PIE code, embedded in C++ as a generated header.

    load("//parasite:blob.bzl", "pie_blob")

    pie_blob(
        name = "restorer_blob",
        srcs = ["restorer.c"],
        hdrs = ["restorer_args.h"],
        entries = ["restorer_entry"],
    )

makes three targets:
  :restorer_blob_elf  the linked ELF (restorer_blob.elf), for objdump/readelf
  :restorer_blob_hdr  the generated header restorer_blob.h
  :restorer_blob      a cc_library with that header; C++ code includes
                      "<package>/restorer_blob.h" and uses
                      crpp::blobs::restorer_blob::{kImage, kImageSize, kMemSize, kAlign,
                      kEntry_<symbol>, kRelocations, kBlob} (see parasite/blob_loader.h).

The sources are compiled with /usr/bin/gcc, freestanding (no libc, no startup
files, no stack protector, no red zone: a blob may run on a stack of its own
inside another program), with the workspace root on the include path, and
linked by parasite/blob.ld into one image that starts at 0. Every blob also
gets parasite/runtime/string.c (memcpy & co, which gcc may call on its own)
and may include "parasite/include/crpp_syscall.h". blob2h then refuses the
image if it needs anything a flat copy plus R_X86_64_RELATIVE fix-ups cannot
give it: undefined symbols, other relocation types, an interpreter, shared
library dependencies, TLS. So a blob can never silently call into libc.
"""

# -fno-tree-loop-distribute-patterns: gcc must not turn a loop into a call to
# memcpy/memset that the runtime itself implements with such loops.
# -fcf-protection=none: no endbr64/notrack, since no loader enables CET for a blob.
# -Werror: blobs are small and ours; a warning there (an undeclared function is a
# libc call in disguise) is a bug.
BLOB_COPTS = [
    "-std=gnu11",
    "-pipe",
    "-fpie",
    "-nostdlib",
    "-ffreestanding",
    "-fno-stack-protector",
    "-fno-builtin",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fno-exceptions",
    "-fno-common",
    "-fno-tree-loop-distribute-patterns",
    "-fcf-protection=none",
    "-fvisibility=hidden",
    "-mno-red-zone",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
]

# -pie with --no-dynamic-linker: position independent, but nothing may ask for
# ld.so. -z defs: an undefined symbol is a link error here already (blob2h
# checks again). norelro and --build-id=none keep the image to what blob.ld places.
BLOB_LINKOPTS = [
    "-Wl,-pie",
    "-Wl,--no-dynamic-linker",
    "-Wl,-z,defs",
    "-Wl,-z,norelro",
    "-Wl,--build-id=none",
    "-Wl,--hash-style=gnu",
    "-Wl,--no-warn-rwx-segments",
]

_LINKER_SCRIPT = "//parasite:blob.ld"
_RUNTIME_SRCS = ["//parasite:runtime/string.c"]
_RUNTIME_HDRS = "//parasite:blob_headers"
_BLOB2H = "//parasite/tools:blob2h"

def pie_blob(name, srcs, hdrs = [], entries = [], copts = [], visibility = None, testonly = False):
    """Builds a freestanding PIE blob and a cc_library embedding it.

    Args:
      name: target name; also the C++ namespace crpp::blobs::<name> and the header <name>.h.
      srcs: C (.c) and assembler (.S) sources.
      hdrs: headers the sources include (workspace-relative includes work).
      entries: symbols whose offsets the header exports as kEntry_<symbol>.
      copts: extra compiler flags.
      visibility: visibility of the cc_library.
      testonly: passed to every target.
    """
    elf = name + ".elf"
    header = name + ".h"
    all_srcs = srcs + _RUNTIME_SRCS

    compile_cmd = " ".join(
        ["/usr/bin/gcc"] + BLOB_COPTS + copts +
        ["-I.", "-I$(GENDIR)"] +
        ["$(location %s)" % s for s in all_srcs] +
        BLOB_LINKOPTS +
        ["-Wl,-T,$(location %s)" % _LINKER_SCRIPT, "-o", "$@"],
    )
    native.genrule(
        name = name + "_elf",
        srcs = all_srcs + hdrs + [_LINKER_SCRIPT, _RUNTIME_HDRS],
        outs = [elf],
        cmd = compile_cmd,
        testonly = testonly,
        visibility = visibility,
    )

    entry_flags = " ".join(["--entry=" + e for e in entries])
    native.genrule(
        name = name + "_hdr",
        srcs = [":" + elf],
        outs = [header],
        tools = [_BLOB2H],
        cmd = "$(location %s) --name=%s %s $(location :%s) $@" % (
            _BLOB2H,
            name,
            entry_flags,
            elf,
        ),
        testonly = testonly,
    )

    native.cc_library(
        name = name,
        hdrs = [":" + header],
        deps = ["//parasite:blob_loader"],
        testonly = testonly,
        visibility = visibility,
    )
