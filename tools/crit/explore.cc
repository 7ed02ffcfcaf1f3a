#include "tools/crit/explore.h"

#include <unistd.h>

#include <map>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/crit_codec.h"
#include "core/images/image_io.h"
#include "core/json.h"

namespace crpp::crit {
namespace {

class Explorer {
 public:
  explicit Explorer(std::string dir) : dir_(std::move(dir)) {}

  absl::StatusOr<std::string> Run(const std::string& what) {
    auto tree = Entries("pstree.img");
    if (!tree.ok()) return tree.status();
    tree_ = std::move(*tree);
    if (what == "ps") return Ps();
    if (what == "fds") return Fds();
    if (what == "mems") return Mems();
    if (what == "rss") return Rss();
    return absl::InvalidArgumentError(
        absl::StrFormat("x: unknown explorer '%s' (ps, fds, mems, rss)", what));
  }

 private:
  bool Exists(const std::string& name) const {
    return access((dir_ + "/" + name).c_str(), F_OK) == 0;
  }

  absl::StatusOr<std::vector<Json>> Entries(const std::string& name) {
    auto r = images::ImageReader::Open(dir_ + "/" + name);
    if (!r.ok()) return r.status();
    auto doc = images::DecodeImage(**r, {});
    if (!doc.ok()) return doc.status();
    return doc->Find("entries")->items();
  }

  static int64_t Int(const Json* j) {
    if (j == nullptr) return 0;
    auto v = j->AsInt64();
    if (v.ok()) return *v;
    auto u = j->AsUint64();
    return u.ok() ? static_cast<int64_t>(*u) : 0;
  }
  static int64_t Field(const Json& obj, std::string_view key) { return Int(obj.Find(key)); }

  // A task id, or the first of its per-namespace ids (ns_pid etc.).
  static int64_t TaskId(const Json& p, const std::string& key) {
    if (const Json* v = p.Find(key)) return Int(v);
    const Json* ns = p.Find("ns_" + key);
    return ns != nullptr && !ns->items().empty() ? Int(&ns->items()[0]) : 0;
  }

  absl::StatusOr<std::string> Ps() {
    std::map<int64_t, std::vector<const Json*>> children;
    const Json* root = nullptr;
    for (const Json& p : tree_) {
      if (TaskId(p, "ppid") == 0) root = &p;
      children[TaskId(p, "ppid")].push_back(&p);
    }
    std::string out = absl::StrFormat("%7s%7s%7s   %s\n", "PID", "PGID", "SID", "COMM");
    if (root == nullptr) return out;
    absl::Status status;
    auto show = [&](auto&& self, const Json& p, int depth) -> void {
      int64_t pid = TaskId(p, "pid");
      std::string comm;
      auto core = Entries(absl::StrFormat("core-%d.img", pid));
      if (!core.ok()) {
        status = core.status();
        return;
      }
      if (!core->empty() && core->front().Find("tc") && core->front().Find("tc")->Find("comm")) {
        comm = core->front().Find("tc")->Find("comm")->text();
      }
      absl::StrAppendFormat(&out, "%7d%7d%7d   %s%s\n", pid, TaskId(p, "pgid"), TaskId(p, "sid"),
                            std::string(4 * depth, ' '), comm);
      for (const Json* c : children[pid]) self(self, *c, depth + 1);
    };
    show(show, *root, 0);
    if (!status.ok()) return status;
    return out;
  }

  // Finds the entry with this id in an image, or nullptr.
  const Json* FindById(const std::string& image, int64_t id) {
    auto& cache = by_image_[image];
    if (!cache.loaded) {
      cache.loaded = true;
      if (Exists(image)) {
        auto e = Entries(image);
        if (e.ok()) cache.entries = std::move(*e);
      }
    }
    for (const Json& e : cache.entries) {
      if (Field(e, "id") == id) return &e;
    }
    return nullptr;
  }

  // The entry of type `type` and id from files.img (its sub-object `sub`), or
  // from the per-type image of older dumps.
  const Json* FileObject(int64_t id, const char* sub, const std::string& legacy, bool* found) {
    *found = false;
    if (Exists("files.img")) {
      if (const Json* f = FindById("files.img", id)) {
        *found = true;
        return f->Find(sub);
      }
    }
    const Json* e = FindById(legacy, id);
    *found = e != nullptr;
    return e;
  }

  std::string FileString(const std::string& type, int64_t id) {
    bool found;
    if (type == "REG") {
      const Json* r = FileObject(id, "reg", "reg-files.img", &found);
      return r != nullptr && r->Find("name") ? r->Find("name")->text() : "unknown path";
    }
    if (type == "PIPE") {
      const Json* p = FileObject(id, "pipe", "pipes.img", &found);
      return p != nullptr ? absl::StrFormat("pipe[%d]", Field(*p, "pipe_id")) : "pipe[?]";
    }
    if (type == "UNIXSK") {
      const Json* u = FileObject(id, "usk", "unixsk.img", &found);
      if (u == nullptr) return "unix[?]";
      std::string s = absl::StrFormat("unix[%d (%d)", Field(*u, "ino"), Field(*u, "peer"));
      if (const Json* n = u->Find("name"); n != nullptr && !n->text().empty()) {
        s += " " + n->text();
      }
      return s + "]";
    }
    return absl::StrFormat("%s.%d", type, id);
  }

  absl::StatusOr<std::string> Fds() {
    std::string out;
    for (const Json& p : tree_) {
      int64_t pid = TaskId(p, "pid");
      absl::StrAppendFormat(&out, "%d\n", pid);
      auto ids = Entries(absl::StrFormat("ids-%d.img", pid));
      if (!ids.ok()) return ids.status();
      int64_t files_id = ids->empty() ? 0 : Field(ids->front(), "files_id");
      auto fdinfo = Entries(absl::StrFormat("fdinfo-%d.img", files_id));
      if (!fdinfo.ok()) return fdinfo.status();
      for (const Json& fd : *fdinfo) {
        const Json* type = fd.Find("type");
        absl::StrAppendFormat(&out, "\t%7d: %s\n", Field(fd, "fd"),
                              FileString(type ? type->text() : "?", Field(fd, "id")));
      }
      auto fs = Entries(absl::StrFormat("fs-%d.img", pid));
      if (!fs.ok()) return fs.status();
      if (!fs->empty()) {
        absl::StrAppendFormat(&out, "\t%7s: %s\n", "cwd",
                              FileString("REG", Field(fs->front(), "cwd_id")));
        absl::StrAppendFormat(&out, "\t%7s: %s\n", "root",
                              FileString("REG", Field(fs->front(), "root_id")));
      }
    }
    return out;
  }

  absl::StatusOr<std::vector<Json>> Vmas(int64_t pid, const Json** mm_out) {
    auto mm = Entries(absl::StrFormat("mm-%d.img", pid));
    if (!mm.ok()) return mm.status();
    mm_cache_ = std::move(*mm);
    if (mm_cache_.empty()) return std::vector<Json>{};
    *mm_out = &mm_cache_.front();
    const Json* v = mm_cache_.front().Find("vmas");
    return v != nullptr ? v->items() : std::vector<Json>{};
  }

  absl::StatusOr<std::string> Mems() {
    std::string out;
    for (const Json& p : tree_) {
      int64_t pid = TaskId(p, "pid");
      absl::StrAppendFormat(&out, "%d\n", pid);
      const Json* mm = nullptr;
      auto vmas = Vmas(pid, &mm);
      if (!vmas.ok()) return vmas.status();
      if (mm != nullptr) {
        absl::StrAppendFormat(&out, "\t%-36s    %s\n", "exe",
                              FileString("REG", Field(*mm, "exe_file_id")));
      }
      std::map<int64_t, int> shm_ids;
      for (const Json& v : *vmas) {
        int64_t start = Field(v, "start"), end = Field(v, "end");
        int64_t prot = Field(v, "prot"), status = Field(v, "status"), shmid = Field(v, "shmid");
        std::string prots = absl::StrFormat("%c%c%c", prot & 1 ? 'r' : '-', prot & 2 ? 'w' : '-',
                                            prot & 4 ? 'x' : '-');
        auto seq = [&](const char* kind) {
          auto [it, fresh] = shm_ids.emplace(shmid, static_cast<int>(shm_ids.size()) + 1);
          return absl::StrFormat(" %s[%x]", kind, it->second);
        };
        std::string info;
        if (status & (1 << 10)) {
          info = seq("ips");
        } else if (status & (1 << 8)) {
          info = seq("shmem");
        } else if (status & (1 << 11)) {
          info = seq("packet");
        } else if (status & ((1 << 6) | (1 << 7))) {
          info = " " + FileString("REG", shmid);
          if (int64_t pgoff = Field(v, "pgoff"); pgoff != 0) {
            absl::StrAppendFormat(&info, " + %#x", pgoff);
          }
          if (status & (1 << 7)) info += " (s)";
        } else if (status & (1 << 1)) {
          info = " [stack]";
        } else if (status & (1 << 2)) {
          info = " [vsyscall]";
        } else if (status & (1 << 3)) {
          info = " [vdso]";
        } else if (Field(v, "flags") & 0x100) {
          info = " [stack?]";
        }
        if (!(status & 1)) info += " *";
        absl::StrAppendFormat(&out, "\t%-36s%s%s\n", absl::StrFormat("%08x-%08x", start, end),
                              prots, info);
      }
    }
    return out;
  }

  absl::StatusOr<std::string> Rss() {
    std::string out;
    for (const Json& p : tree_) {
      int64_t pid = TaskId(p, "pid");
      absl::StrAppendFormat(&out, "%d\n", pid);
      const Json* mm = nullptr;
      auto vmas = Vmas(pid, &mm);
      if (!vmas.ok()) return vmas.status();
      auto pmap = Entries(absl::StrFormat("pagemap-%d.img", pid));
      if (!pmap.ok()) return pmap.status();
      size_t vmi = 0;
      int64_t pvmi = -1;
      size_t n = vmas->size();
      for (size_t i = 1; i < pmap->size(); ++i) {  // entry 0 is the head
        const Json& pm = (*pmap)[i];
        int64_t vaddr = Field(pm, "vaddr");
        int64_t nr = pm.Find("nr_pages") ? Field(pm, "nr_pages") : Field(pm, "compat_nr_pages");
        std::string pstr = absl::StrFormat("\t%x / %-8d", vaddr, nr);
        while (vmi < n && Field((*vmas)[vmi], "end") <= vaddr) ++vmi;
        int64_t pme = vaddr + (nr << 12);
        std::string vstr;
        while (vmi < n && Field((*vmas)[vmi], "start") < pme) {
          const Json& v = (*vmas)[vmi];
          if (static_cast<int64_t>(vmi) == pvmi) {
            vstr += " ~";
          } else {
            int64_t start = Field(v, "start");
            absl::StrAppendFormat(&vstr, " %08x / %-8d", start, (Field(v, "end") - start) >> 12);
            if (Field(v, "status") & ((1 << 6) | (1 << 7))) {
              vstr += " " + FileString("REG", Field(v, "shmid"));
            }
            pvmi = static_cast<int64_t>(vmi);
          }
          vstr += "\n\t" + std::string(23, ' ');
          ++vmi;
        }
        if (vmi > 0) --vmi;
        absl::StrAppendFormat(&out, "%-24s%s\n", pstr, vstr);
      }
    }
    return out;
  }

  struct Cached {
    bool loaded = false;
    std::vector<Json> entries;
  };
  std::string dir_;
  std::vector<Json> tree_;
  std::vector<Json> mm_cache_;
  std::map<std::string, Cached> by_image_;
};

}  // namespace

absl::StatusOr<std::string> Explore(const std::string& dir, const std::string& what) {
  return Explorer(dir).Run(what);
}

}  // namespace crpp::crit
