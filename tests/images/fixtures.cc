#include "tests/images/fixtures.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "core-x86.pb.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "fdinfo.pb.h"
#include "fs.pb.h"
#include "ghost-file.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "inventory.pb.h"
#include "ipc-sem.pb.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "pipe-data.pb.h"
#include "pstree.pb.h"
#include "sa.pb.h"
#include "sk-inet.pb.h"
#include "sk-unix.pb.h"
#include "tcp-stream.pb.h"

namespace crpp::testing {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

class Dir {
 public:
  explicit Dir(std::string dir) : dir_(std::move(dir)) {}

  // Writes entries (each followed by its payload, if any) into `name`.
  absl::Status Write(const std::string& name, std::string_view kind,
                     const std::vector<std::pair<const Message*, std::string>>& entries) {
    const images::ImageKind* k = images::FindKindByName(kind);
    if (k == nullptr) return absl::InternalError(absl::StrFormat("no kind %s", kind));
    auto w = images::ImageWriter::Create(dir_ + "/" + name, *k);
    if (!w.ok()) return w.status();
    for (const auto& [msg, payload] : entries) {
      if (auto s = (*w)->Write(*msg); !s.ok()) return s;
      if (auto s = (*w)->WritePayload(payload); !s.ok()) return s;
    }
    return (*w)->Close();
  }

  absl::Status WriteRaw(const std::string& name, const std::string& bytes) {
    int fd = open((dir_ + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return absl::InternalError("cannot create " + name);
    bool ok = write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    close(fd);
    return ok ? absl::OkStatus() : absl::InternalError("short write to " + name);
  }

 private:
  std::string dir_;
};

void Fown(criu::fown_entry* f) {
  f->set_uid(0);
  f->set_euid(0);
  f->set_signum(0);
  f->set_pid_type(0);
  f->set_pid(0);
}

criu::core_entry Core(uint32_t pid, const char* comm) {
  criu::core_entry c;
  c.set_mtype(criu::core_entry::X86_64);
  auto* ti = c.mutable_thread_info();
  ti->set_clear_tid_addr(0x7f0000001a10 + pid);
  auto* r = ti->mutable_gpregs();
  r->set_ip(0x401136);
  r->set_sp(0x7ffc8e5d2f10);
  r->set_ax(0xfffffffffffffdfc);  // -ERESTART_RESTARTBLOCK: interrupted nanosleep
  r->set_orig_ax(35);
  r->set_flags(0x246);
  r->set_fs_base(0x7f0000001740);
  auto* fp = ti->mutable_fpregs();
  fp->set_mxcsr(0x1f80);
  fp->set_mxcsr_mask(0xffff);
  for (int i = 0; i < 32; ++i) fp->add_st_space(0);
  for (int i = 0; i < 64; ++i) fp->add_xmm_space(i == 0 ? 0x3ff00000u : 0);
  auto* tc = c.mutable_tc();
  tc->set_task_state(1);
  tc->set_exit_code(0);
  tc->set_personality(0);
  tc->set_flags(0x400100);
  tc->set_blk_sigset(0x10000);
  tc->set_comm(comm);
  tc->set_child_subreaper(false);
  auto* th = c.mutable_thread_core();
  th->set_futex_rla(0x7f0000001a20);
  th->set_futex_rla_len(24);
  th->set_sched_nice(0);
  th->set_sched_policy(0);
  th->set_blk_sigset(0x10000);
  FillRequired(c, pid);
  return c;
}

}  // namespace

void FillRequired(Message& msg, uint64_t seed) {
  const auto* d = msg.GetDescriptor();
  const auto* r = msg.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() &&
        (f->is_required() || r->HasField(msg, f))) {
      FillRequired(*r->MutableMessage(&msg, f), seed * 31 + f->number());
      continue;
    }
    if (!f->is_required() || r->HasField(msg, f)) continue;
    uint64_t v = seed * 1000 + f->number();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(&msg, f, static_cast<int32_t>(v));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(&msg, f, static_cast<int64_t>(v));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(&msg, f, static_cast<uint32_t>(v));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(&msg, f, v);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(&msg, f, v % 2 == 1);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnum(&msg, f, f->enum_type()->value(f->enum_type()->value_count() - 1));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(&msg, f, absl::StrFormat("%s-%d", f->name(), v));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetDouble(&msg, f, static_cast<double>(v));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->SetFloat(&msg, f, static_cast<float>(v));
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
  }
}

std::vector<std::string> FixtureImageNames() {
  return {"inventory.img",   "pstree.img",       "core-100.img",     "core-101.img",
          "ids-100.img",     "ids-101.img",      "mm-100.img",       "mm-101.img",
          "pagemap-100.img", "pagemap-101.img",  "fs-100.img",       "fs-101.img",
          "files.img",       "fdinfo-2.img",     "sigacts-100.img",  "pipes-data.img",
          "inetsk.img",      "tcp-stream-5.img", "ghost-file-3.img", "ipcns-sem-9.img"};
}

absl::Status WriteFixtureDump(const std::string& dir) {
  Dir d(dir);
  criu::inventory_entry inv;
  inv.set_img_version(2);
  inv.set_fdinfo_per_id(true);
  auto* ids = inv.mutable_root_ids();
  ids->set_vm_id(1);
  ids->set_files_id(2);
  ids->set_fs_id(3);
  ids->set_sighand_id(4);
  ids->set_pid_ns_id(5);
  inv.set_ns_per_id(true);
  inv.set_root_cg_set(1);
  inv.set_lsmtype(criu::NO_LSM);
  inv.set_dump_uptime(123456789);
  if (auto s = d.Write("inventory.img", "INVENTORY", {{&inv, ""}}); !s.ok()) return s;

  criu::pstree_entry p1, p2;
  p1.set_pid(100);
  p1.set_ppid(0);
  p1.set_pgid(100);
  p1.set_sid(90);
  p1.add_threads(100);
  p2.set_pid(101);
  p2.set_ppid(100);
  p2.set_pgid(100);
  p2.set_sid(90);
  p2.add_threads(101);
  if (auto s = d.Write("pstree.img", "PSTREE", {{&p1, ""}, {&p2, ""}}); !s.ok()) return s;

  criu::core_entry c1 = Core(100, "counter"), c2 = Core(101, "worker");
  if (auto s = d.Write("core-100.img", "CORE", {{&c1, ""}}); !s.ok()) return s;
  if (auto s = d.Write("core-101.img", "CORE", {{&c2, ""}}); !s.ok()) return s;
  criu::task_kobj_ids_entry tids = inv.root_ids();
  if (auto s = d.Write("ids-100.img", "IDS", {{&tids, ""}}); !s.ok()) return s;
  if (auto s = d.Write("ids-101.img", "IDS", {{&tids, ""}}); !s.ok()) return s;

  criu::mm_entry mm;
  mm.set_mm_start_code(0x400000);
  mm.set_mm_end_code(0x401245);
  mm.set_mm_start_data(0x403e10);
  mm.set_mm_end_data(0x404048);
  mm.set_mm_start_stack(0x7ffc8e5d3000);
  mm.set_mm_start_brk(0x1e8c000);
  mm.set_mm_brk(0x1ead000);
  mm.set_mm_arg_start(0x7ffc8e5d4f00);
  mm.set_mm_arg_end(0x7ffc8e5d4f10);
  mm.set_mm_env_start(0x7ffc8e5d4f10);
  mm.set_mm_env_end(0x7ffc8e5d4fe0);
  mm.set_exe_file_id(7);
  for (uint64_t a : {33ull, 0x7ffc8e5f1000ull, 16ull, 0xbfebfbffull, 6ull, 4096ull}) {
    mm.add_mm_saved_auxv(a);
  }
  struct V {
    uint64_t start, end, pgoff, shmid;
    uint32_t prot, flags, status;
  };
  for (const V& v :
       {V{0x400000, 0x402000, 0, 7, 5, 2, 0x41}, V{0x1e8c000, 0x1ead000, 0, 0, 3, 0x22, 0x221},
        V{0x7f0000000000, 0x7f0000100000, 0, 0, 3, 0x22, 0x201},
        V{0x7ffc8e5b2000, 0x7ffc8e5d4000, 0, 0, 3, 0x122, 0x203},
        V{0x7ffc8e5f1000, 0x7ffc8e5f3000, 0, 0, 5, 0x22, 0x209}}) {
    auto* vma = mm.add_vmas();
    vma->set_start(v.start);
    vma->set_end(v.end);
    vma->set_pgoff(v.pgoff);
    vma->set_shmid(v.shmid);
    vma->set_prot(v.prot);
    vma->set_flags(v.flags);
    vma->set_status(v.status);
    vma->set_fd(-1);
    vma->set_madv(0);
    vma->set_fdflags(0);
  }
  mm.set_dumpable(1);
  if (auto s = d.Write("mm-100.img", "MM", {{&mm, ""}}); !s.ok()) return s;
  // The child shares nothing but looks the same (a fork that has not exec'd).
  if (auto s = d.Write("mm-101.img", "MM", {{&mm, ""}}); !s.ok()) return s;

  criu::pagemap_head ph;
  ph.set_pages_id(1);
  criu::pagemap_entry pe1, pe2;
  pe1.set_vaddr(0x400000);
  pe1.set_compat_nr_pages(2);
  pe1.set_flags(4);
  pe1.set_nr_pages(2);
  pe2.set_vaddr(0x1e8c000);
  pe2.set_compat_nr_pages(1);
  pe2.set_flags(4);
  pe2.set_nr_pages(1);
  if (auto s = d.Write("pagemap-100.img", "PAGEMAP", {{&ph, ""}, {&pe1, ""}, {&pe2, ""}});
      !s.ok()) {
    return s;
  }
  ph.set_pages_id(2);
  if (auto s = d.Write("pagemap-101.img", "PAGEMAP", {{&ph, ""}, {&pe1, ""}}); !s.ok()) return s;
  if (auto s = d.WriteRaw("pages-1.img", std::string(3 * 4096, 'p')); !s.ok()) return s;
  if (auto s = d.WriteRaw("pages-2.img", std::string(2 * 4096, 'q')); !s.ok()) return s;

  criu::fs_entry fs;
  fs.set_cwd_id(8);
  fs.set_root_id(9);
  fs.set_umask(022);
  if (auto s = d.Write("fs-100.img", "FS", {{&fs, ""}}); !s.ok()) return s;
  if (auto s = d.Write("fs-101.img", "FS", {{&fs, ""}}); !s.ok()) return s;

  // files.img: the exe, cwd, root, a log file, a pipe and a unix socket.
  std::vector<criu::file_entry> files;
  auto reg = [&](uint32_t id, const char* path, uint32_t flags, uint64_t pos) {
    criu::file_entry f;
    f.set_type(criu::REG);
    f.set_id(id);
    auto* r = f.mutable_reg();
    r->set_id(id);
    r->set_flags(flags);
    r->set_pos(pos);
    Fown(r->mutable_fown());
    r->set_name(path);
    r->set_mnt_id(22);
    r->set_size(4096);
    r->set_mode(0100644);
    files.push_back(f);
  };
  reg(7, "/usr/bin/counter", 0100000, 0);
  reg(8, "/home/user", 0200000, 0);
  reg(9, "/", 0200000, 0);
  reg(10, "/tmp/counter.log", 02101, 1234);
  criu::file_entry pipe;
  pipe.set_type(criu::PIPE);
  pipe.set_id(11);
  auto* pp = pipe.mutable_pipe();
  pp->set_id(11);
  pp->set_pipe_id(55555);
  pp->set_flags(0);
  Fown(pp->mutable_fown());
  files.push_back(pipe);
  criu::file_entry usk;
  usk.set_type(criu::UNIXSK);
  usk.set_id(12);
  auto* u = usk.mutable_usk();
  u->set_id(12);
  u->set_ino(77777);
  u->set_type(1);
  u->set_state(1);
  u->set_flags(0x802);
  u->set_uflags(0);
  u->set_backlog(0);
  u->set_peer(77778);
  Fown(u->mutable_fown());
  auto* o = u->mutable_opts();
  o->set_so_sndbuf(212992);
  o->set_so_rcvbuf(212992);
  o->set_so_snd_tmo_sec(0);
  o->set_so_snd_tmo_usec(0);
  o->set_so_rcv_tmo_sec(0);
  o->set_so_rcv_tmo_usec(0);
  u->set_name(std::string("\0control=1", 10));  // abstract name
  files.push_back(usk);
  std::vector<std::pair<const Message*, std::string>> fe;
  for (const auto& f : files) fe.push_back({&f, ""});
  if (auto s = d.Write("files.img", "FILES", fe); !s.ok()) return s;

  std::vector<criu::fdinfo_entry> fds(4);
  const std::pair<uint32_t, criu::fd_types> fdv[] = {
      {10, criu::REG}, {11, criu::PIPE}, {12, criu::UNIXSK}, {7, criu::REG}};
  std::vector<std::pair<const Message*, std::string>> fde;
  for (int i = 0; i < 4; ++i) {
    fds[i].set_id(fdv[i].first);
    fds[i].set_flags(i == 3 ? 1 : 0);
    fds[i].set_type(fdv[i].second);
    fds[i].set_fd(i == 3 ? 5 : i);
    fde.push_back({&fds[i], ""});
  }
  if (auto s = d.Write("fdinfo-2.img", "FDINFO", fde); !s.ok()) return s;

  criu::sa_entry sa;
  sa.set_sigaction(0x401196);
  sa.set_flags(0x4000000);
  sa.set_restorer(0x7f0000045320);
  sa.set_mask(0);
  sa.set_compat_sigaction(false);
  if (auto s = d.Write("sigacts-100.img", "SIGACT", {{&sa, ""}}); !s.ok()) return s;

  criu::pipe_data_entry pd;
  pd.set_pipe_id(55555);
  std::string pipe_bytes = "hello from the pipe\n" + std::string(100, 'x');
  pd.set_bytes(pipe_bytes.size());
  pd.set_size(65536);
  if (auto s = d.Write("pipes-data.img", "PIPES_DATA", {{&pd, pipe_bytes}}); !s.ok()) return s;

  criu::inet_sk_entry isk;
  isk.set_id(13);
  isk.set_ino(88888);
  isk.set_family(2);
  isk.set_type(1);
  isk.set_proto(6);
  isk.set_state(1);
  isk.set_src_port(8080);
  isk.set_dst_port(51234);
  isk.set_flags(0x802);
  isk.set_backlog(0);
  isk.add_src_addr(0x0100007f);  // 127.0.0.1 in network byte order
  isk.add_dst_addr(0x0100007f);
  Fown(isk.mutable_fown());
  *isk.mutable_opts() = u->opts();
  criu::inet_sk_entry isk6 = isk;
  isk6.set_id(14);
  isk6.set_family(10);
  isk6.clear_src_addr();
  isk6.clear_dst_addr();
  for (uint32_t w : {0x000080feu, 0u, 0u, 0x01000000u}) isk6.add_src_addr(w);  // fe80::1
  for (uint32_t w : {0u, 0u, 0u, 0x01000000u}) isk6.add_dst_addr(w);           // ::1
  if (auto s = d.Write("inetsk.img", "INETSK", {{&isk, ""}, {&isk6, ""}}); !s.ok()) return s;

  criu::tcp_stream_entry tcp;
  tcp.set_inq_len(5);
  tcp.set_inq_seq(1000);
  tcp.set_outq_len(3);
  tcp.set_outq_seq(2000);
  tcp.set_opt_mask(0x7);
  tcp.set_snd_wscale(7);
  tcp.set_mss_clamp(65483);
  if (auto s = d.Write("tcp-stream-5.img", "TCP_STREAM", {{&tcp, "inq..out"}}); !s.ok()) return s;

  criu::ghost_file_entry ghost;
  ghost.set_uid(1000);
  ghost.set_gid(1000);
  ghost.set_mode(0100600);
  ghost.set_dev((8u << 20) | 1);
  ghost.set_ino(424242);
  ghost.set_size(11);
  if (auto s = d.Write("ghost-file-3.img", "GHOST_FILE", {{&ghost, "ghost bytes"}}); !s.ok()) {
    return s;
  }

  criu::ipc_sem_entry sem;
  auto* desc = sem.mutable_desc();
  desc->set_key(0x1234);
  desc->set_uid(0);
  desc->set_gid(0);
  desc->set_cuid(0);
  desc->set_cgid(0);
  desc->set_mode(0600);
  desc->set_id(3);
  sem.set_nsems(3);
  std::string sems;
  for (uint16_t v : {1, 0, 7}) sems.append(reinterpret_cast<const char*>(&v), 2);
  sems.append(2, '\0');  // padded to 8 bytes
  return d.Write("ipcns-sem-9.img", "IPCNS_SEM", {{&sem, sems}});
}

}  // namespace crpp::testing
