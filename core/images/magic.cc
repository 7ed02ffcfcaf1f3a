#include "core/images/magic.h"

#include "absl/strings/str_format.h"

namespace crpp::images {
namespace {

// File-name prefixes CRIU uses, e.g. "core-" for core-PID.img.
struct FilePrefix {
  std::string_view prefix;
  std::string_view kind;
};
constexpr FilePrefix kPrefixes[] = {
    {"inventory", "INVENTORY"},
    {"pstree", "PSTREE"},
    {"fdinfo-", "FDINFO"},
    {"pagemap-", "PAGEMAP"},
    {"core-", "CORE"},
    {"ids-", "IDS"},
    {"vmas-", "VMAS"},
    {"pipes-data", "PIPES_DATA"},
    {"pipes", "PIPES"},
    {"fifo-data", "FIFO_DATA"},
    {"fifo", "FIFO"},
    {"sigacts-", "SIGACT"},
    {"unixsk", "UNIXSK"},
    {"inetsk", "INETSK"},
    {"packetsk", "PACKETSK"},
    {"itimers-", "ITIMERS"},
    {"posix-timers-", "POSIX_TIMERS"},
    {"sk-queues", "SK_QUEUES"},
    {"utsns-", "UTSNS"},
    {"creds-", "CREDS"},
    {"reg-files", "REG_FILES"},
    {"ext-files", "EXT_FILES"},
    {"fs-", "FS"},
    {"mm-", "MM"},
    {"remap-fpath", "REMAP_FPATH"},
    {"ghost-file-", "GHOST_FILE"},
    {"tcp-stream-", "TCP_STREAM"},
    {"eventfd", "EVENTFD_FILE"},
    {"eventpoll-tfd", "EVENTPOLL_TFD"},
    {"eventpoll", "EVENTPOLL_FILE"},
    {"signalfd", "SIGNALFD"},
    {"inotify-wd", "INOTIFY_WD"},
    {"inotify", "INOTIFY_FILE"},
    {"mountpoints-", "MNTS"},
    {"netdev-", "NETDEV"},
    {"netns-", "NETNS"},
    {"tty-info", "TTY_INFO"},
    {"tty-data", "TTY_DATA"},
    {"tty", "TTY_FILES"},
    {"filelocks", "FILE_LOCKS"},
    {"rlimit-", "RLIMIT"},
    {"fanotify-mark", "FANOTIFY_MARK"},
    {"fanotify", "FANOTIFY_FILE"},
    {"signal-", "SIGNAL"},
    {"netlinksk", "NETLINK_SK"},
    {"ns-files", "NS_FILES"},
    {"tunfile", "TUNFILE"},
    {"cgroup", "CGROUP"},
    {"timerfd", "TIMERFD"},
    {"cpuinfo", "CPUINFO"},
    {"userns-", "USERNS"},
    {"seccomp", "SECCOMP"},
    {"files", "FILES"},
    {"memfd", "MEMFD_INODE"},
    {"timens-", "TIMENS"},
    {"pidns-", "PIDNS"},
    {"bpfmap-file", "BPFMAP_FILE"},
    {"bpfmap-data", "BPFMAP_DATA"},
    {"stats-", "STATS"},
    {"ipcns-var-", "IPC_VAR"},
    {"ipcns-shm-", "IPCNS_SHM"},
    {"ipcns-msg-", "IPCNS_MSG"},
    {"ipcns-sem-", "IPCNS_SEM"},
};

const ImageKind& Named(std::string_view name) {
  const ImageKind* k = FindKindByName(name);
  // The names below are literals of this file; a miss is a programming error.
  if (k == nullptr) __builtin_trap();
  return *k;
}

}  // namespace

absl::Span<const ImageKind> AllKinds() { return table::kKinds; }

const ImageKind* FindKindByMagic(uint32_t magic) {
  for (const ImageKind& k : table::kKinds) {
    if (k.magic == magic) return &k;
  }
  return nullptr;
}

const ImageKind* FindKindByName(std::string_view name) {
  for (const ImageKind& k : table::kKinds) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

const ImageKind* KindForFileName(std::string_view file_name) {
  if (!file_name.ends_with(".img")) return nullptr;
  // Longest matching prefix wins ("pipes-data" before "pipes").
  const FilePrefix* best = nullptr;
  for (const FilePrefix& p : kPrefixes) {
    if (file_name.starts_with(p.prefix) &&
        (best == nullptr || p.prefix.size() > best->prefix.size())) {
      best = &p;
    }
  }
  return best == nullptr ? nullptr : FindKindByName(best->kind);
}

std::string MagicBytes(const ImageKind& kind) {
  std::string out;
  auto put = [&out](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  if (kind.head == Head::kCommon) put(kImgCommonMagic);
  if (kind.head == Head::kService) put(kImgServiceMagic);
  put(kind.magic);
  return out;
}

const ImageKind& Inventory() { return Named("INVENTORY"); }
const ImageKind& Pstree() { return Named("PSTREE"); }
const ImageKind& Core() { return Named("CORE"); }
const ImageKind& Ids() { return Named("IDS"); }
const ImageKind& Mm() { return Named("MM"); }
const ImageKind& Pagemap() { return Named("PAGEMAP"); }
const ImageKind& Files() { return Named("FILES"); }
const ImageKind& Fdinfo() { return Named("FDINFO"); }
const ImageKind& Fs() { return Named("FS"); }
const ImageKind& Creds() { return Named("CREDS"); }
const ImageKind& Sigact() { return Named("SIGACT"); }
const ImageKind& Stats() { return Named("STATS"); }
const ImageKind& PipesData() { return Named("PIPES_DATA"); }
const ImageKind& FifoData() { return Named("FIFO_DATA"); }
const ImageKind& MemfdInode() { return Named("MEMFD_INODE"); }

}  // namespace crpp::images
