// The table of image kinds: CRIU's magic numbers, the head magic each image
// starts with, and the protobuf message its entries hold. One table serves the
// engine (which writes and reads images by kind) and crit (which decodes any
// image by the magic it finds).
#ifndef CRPP_CORE_IMAGES_MAGIC_H_
#define CRPP_CORE_IMAGES_MAGIC_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace crpp::images {

inline constexpr uint32_t kImgCommonMagic = 0x54564319;
inline constexpr uint32_t kImgServiceMagic = 0x55105940;

// Upper bound for one payload that follows an entry (pipe data, socket queues).
inline constexpr uint64_t kMaxPayloadSize = 1ull << 31;

// What precedes the image magic in a file.
enum class Head { kNone, kCommon, kService };

// Bytes that follow some entries, outside the protobuf message.
enum class Payload {
  kNone,
  kPipeData,    // PipeDataEntry.bytes bytes of pipe contents
  kSkQueue,     // SkPacketEntry.length bytes of queued socket data
  kTcpStream,   // TcpStreamEntry.inq_len + outq_len bytes of queued TCP data
  kGhostFile,   // the file's contents unless GhostFileEntry.chunks says they follow as chunks
  kIpcShm,      // IpcShmEntry.size bytes, rounded up to 4
  kIpcSem,      // IpcSemEntry.nsems u16 values, rounded up to 8 bytes
  kIpcMsg,      // IpcMsgEntry.qnum messages, each an IpcMsg entry and its text
  kBpfMapData,  // BpfmapDataEntry.keys_bytes + values_bytes bytes
};

struct ImageKind {
  std::string_view name;  // crit's name: "CORE", "PAGEMAP", ...
  uint32_t magic;
  Head head;
  std::string_view entry_type;  // protobuf message of the entries (package criu)
  std::string_view head_type;   // a different first entry (pagemap_head), or empty
  Payload payload;
};

// The table is constexpr so that the resource registry can check at compile
// time that the images a plugin claims exist and belong to no other plugin.
namespace table {
inline constexpr Head C = Head::kCommon;

// Numbers are CRIU's (criu/include/magic.h); they are part of the on-disk format.
inline constexpr ImageKind kKinds[] = {
    {"INVENTORY", 0x58313116, Head::kNone, "inventory_entry", "", Payload::kNone},
    {"PSTREE", 0x50273030, C, "pstree_entry", "", Payload::kNone},
    {"FDINFO", 0x56213732, C, "fdinfo_entry", "", Payload::kNone},
    {"PAGEMAP", 0x56084025, C, "pagemap_entry", "pagemap_head", Payload::kNone},
    {"CORE", 0x55053847, C, "core_entry", "", Payload::kNone},
    {"IDS", 0x54432030, C, "task_kobj_ids_entry", "", Payload::kNone},
    {"VMAS", 0x54123737, C, "vma_entry", "", Payload::kNone},
    {"PIPES", 0x56513555, C, "pipe_entry", "", Payload::kNone},
    {"PIPES_DATA", 0x56453709, C, "pipe_data_entry", "", Payload::kPipeData},
    {"FIFO", 0x58364939, C, "fifo_entry", "", Payload::kNone},
    {"FIFO_DATA", 0x59333054, C, "pipe_data_entry", "", Payload::kPipeData},
    {"SIGACT", 0x55344201, C, "sa_entry", "", Payload::kNone},
    {"UNIXSK", 0x54373943, C, "unix_sk_entry", "", Payload::kNone},
    {"INETSK", 0x56443851, C, "inet_sk_entry", "", Payload::kNone},
    {"PACKETSK", 0x60454618, C, "packet_sock_entry", "", Payload::kNone},
    {"ITIMERS", 0x57464056, C, "itimer_entry", "", Payload::kNone},
    {"POSIX_TIMERS", 0x52603957, C, "posix_timer_entry", "", Payload::kNone},
    {"SK_QUEUES", 0x56264026, C, "sk_packet_entry", "", Payload::kSkQueue},
    {"UTSNS", 0x54473203, C, "utsns_entry", "", Payload::kNone},
    {"CREDS", 0x54023547, C, "creds_entry", "", Payload::kNone},
    {"IPC_VAR", 0x53115007, C, "ipc_var_entry", "", Payload::kNone},
    {"IPCNS_SHM", 0x46283044, C, "ipc_shm_entry", "", Payload::kIpcShm},
    {"IPCNS_MSG", 0x55453737, C, "ipc_msg_entry", "", Payload::kIpcMsg},
    {"IPCNS_SEM", 0x59573019, C, "ipc_sem_entry", "", Payload::kIpcSem},
    {"REG_FILES", 0x50363636, C, "reg_file_entry", "", Payload::kNone},
    {"EXT_FILES", 0x59255641, C, "ext_file_entry", "", Payload::kNone},
    {"FS", 0x51403912, C, "fs_entry", "", Payload::kNone},
    {"MM", 0x57492820, C, "mm_entry", "", Payload::kNone},
    {"REMAP_FPATH", 0x59133954, C, "remap_file_path_entry", "", Payload::kNone},
    {"GHOST_FILE", 0x52583605, C, "ghost_file_entry", "", Payload::kGhostFile},
    {"TCP_STREAM", 0x51465506, C, "tcp_stream_entry", "", Payload::kTcpStream},
    {"EVENTFD_FILE", 0x44523722, C, "eventfd_file_entry", "", Payload::kNone},
    {"EVENTPOLL_FILE", 0x45023858, C, "eventpoll_file_entry", "", Payload::kNone},
    {"EVENTPOLL_TFD", 0x44433746, C, "eventpoll_tfd_entry", "", Payload::kNone},
    {"SIGNALFD", 0x57323820, C, "signalfd_entry", "", Payload::kNone},
    {"INOTIFY_FILE", 0x48424431, C, "inotify_file_entry", "", Payload::kNone},
    {"INOTIFY_WD", 0x54562009, C, "inotify_wd_entry", "", Payload::kNone},
    {"MNTS", 0x55563928, C, "mnt_entry", "", Payload::kNone},
    {"NETDEV", 0x57373951, C, "net_device_entry", "", Payload::kNone},
    {"NETNS", 0x55933752, C, "netns_entry", "", Payload::kNone},
    {"TTY_FILES", 0x59433025, C, "tty_file_entry", "", Payload::kNone},
    {"TTY_INFO", 0x59453036, C, "tty_info_entry", "", Payload::kNone},
    {"TTY_DATA", 0x59413026, C, "tty_data_entry", "", Payload::kNone},
    {"FILE_LOCKS", 0x54323616, C, "file_lock_entry", "", Payload::kNone},
    {"RLIMIT", 0x57113925, C, "rlimit_entry", "", Payload::kNone},
    {"FANOTIFY_FILE", 0x55096122, C, "fanotify_file_entry", "", Payload::kNone},
    {"FANOTIFY_MARK", 0x56506035, C, "fanotify_mark_entry", "", Payload::kNone},
    {"SIGNAL", 0x59255647, C, "siginfo_entry", "", Payload::kNone},
    {"NETLINK_SK", 0x58005614, C, "netlink_sk_entry", "", Payload::kNone},
    {"NS_FILES", 0x61394011, C, "ns_file_entry", "", Payload::kNone},
    {"TUNFILE", 0x57143751, C, "tunfile_entry", "", Payload::kNone},
    {"CGROUP", 0x59383330, C, "cgroup_entry", "", Payload::kNone},
    {"TIMERFD", 0x50493712, C, "timerfd_entry", "", Payload::kNone},
    {"CPUINFO", 0x61404013, C, "cpuinfo_entry", "", Payload::kNone},
    {"USERNS", 0x55474906, C, "userns_entry", "", Payload::kNone},
    {"SECCOMP", 0x64413049, C, "seccomp_entry", "", Payload::kNone},
    {"FILES", 0x56303138, C, "file_entry", "", Payload::kNone},
    {"MEMFD_INODE", 0x48453499, C, "memfd_inode_entry", "", Payload::kNone},
    {"TIMENS", 0x43114433, C, "timens_entry", "", Payload::kNone},
    {"PIDNS", 0x61157326, C, "pidns_entry", "", Payload::kNone},
    {"BPFMAP_FILE", 0x57506142, C, "bpfmap_file_entry", "", Payload::kNone},
    {"BPFMAP_DATA", 0x64324033, C, "bpfmap_data_entry", "", Payload::kBpfMapData},
    {"AUTOFS", 0x49353943, C, "autofs_entry", "", Payload::kNone},
    {"APPARMOR", 0x59423047, C, "apparmor_entry", "", Payload::kNone},
    {"STATS", 0x57093306, Head::kService, "stats_entry", "", Payload::kNone},
    {"IRMAP_CACHE", 0x57004059, Head::kService, "irmap_cache_entry", "", Payload::kNone},
};

}  // namespace table

constexpr const ImageKind* FindKindConstexpr(std::string_view name) {
  for (const ImageKind& k : table::kKinds) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

// Every kind this project knows; a magic appears once.
absl::Span<const ImageKind> AllKinds();
const ImageKind* FindKindByMagic(uint32_t magic);
const ImageKind* FindKindByName(std::string_view name);
// The kind CRIU uses for a file of this name ("core-42.img" -> CORE), or
// nullptr for raw images (pages-N.img) and files that are not images.
const ImageKind* KindForFileName(std::string_view file_name);
// The bytes a file of this kind starts with.
std::string MagicBytes(const ImageKind& kind);
// OK when `kind` holds entries of protobuf type `type`.
absl::Status CheckEntryType(const ImageKind& kind, std::string_view type);

// The kinds the engine refers to by name.
const ImageKind& Inventory();
const ImageKind& Pstree();
const ImageKind& Core();
const ImageKind& Ids();
const ImageKind& Mm();
const ImageKind& Pagemap();
const ImageKind& Files();
const ImageKind& Fdinfo();
const ImageKind& Fs();
const ImageKind& Creds();
const ImageKind& Sigact();
const ImageKind& Stats();
const ImageKind& PipesData();
const ImageKind& FifoData();
const ImageKind& MemfdInode();

}  // namespace crpp::images

#endif  // CRPP_CORE_IMAGES_MAGIC_H_
