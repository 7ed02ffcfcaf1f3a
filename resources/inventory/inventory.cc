#include "resources/inventory/inventory.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "inventory.pb.h"

namespace crpp::resources {
namespace {

std::string InventoryPath(const std::string& dir) { return dir + "/inventory.img"; }

// The LSM that labels tasks, as CRIU records it: restore must find the same.
criu::lsmtype DetectLsm() {
  std::ifstream in("/sys/kernel/security/lsm");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string lsms = ss.str();
  if (lsms.find("selinux") != std::string::npos) return criu::SELINUX;
  if (lsms.find("apparmor") != std::string::npos) return criu::APPARMOR;
  return criu::NO_LSM;
}

}  // namespace

absl::Status Inventory::Dump(DumpContext& ctx) {
  criu::inventory_entry inv;
  inv.set_img_version(kImagesVersion);
  // Our layout is CRIU's modern one: fdinfo and namespace images per id.
  inv.set_fdinfo_per_id(true);
  inv.set_ns_per_id(true);
  inv.set_lsmtype(DetectLsm());
  auto w = images::TypedImageWriter<criu::inventory_entry>::Create(InventoryPath(ctx.images_dir),
                                                                   images::Inventory());
  if (!w.ok()) return w.status();
  if (auto s = w->Write(inv); !s.ok()) return s;
  log::Info("inventory: image version %d, lsm %s", kImagesVersion,
            criu::lsmtype_Name(inv.lsmtype()));
  return w->Close();
}

absl::Status Inventory::Restore(RestoreContext& ctx) {
  std::string path = InventoryPath(ctx.images_dir);
  auto all = images::ReadAll<criu::inventory_entry>(path, images::Inventory());
  if (!all.ok()) return all.status();
  if (all->size() != 1) {
    return absl::DataLossError(
        absl::StrFormat("%s: expected one inventory entry, found %d", path, all->size()));
  }
  const criu::inventory_entry& inv = all->front();
  if (inv.img_version() != kImagesVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: image version %d is not supported (this engine reads version %d, CRIU's v1.1)", path,
        inv.img_version(), kImagesVersion));
  }
  if (!inv.fdinfo_per_id()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: images with per-task fdinfo (pre-1.6 CRIU layout) are not supported", path));
  }
  if (inv.has_lsmtype() && inv.lsmtype() != criu::NO_LSM && inv.lsmtype() != DetectLsm()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: the dump was made under LSM %s, which this machine does not run", path,
                        criu::lsmtype_Name(inv.lsmtype())));
  }
  log::Info("inventory: image version %d", inv.img_version());
  return absl::OkStatus();
}

}  // namespace crpp::resources
