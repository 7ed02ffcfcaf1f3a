// The inventory image (inventory.img): what kind of image set a directory
// holds. Written first at dump; read and checked first at restore, so that a
// directory of another format or version is refused before anything else.
#ifndef CRPP_RESOURCES_INVENTORY_INVENTORY_H_
#define CRPP_RESOURCES_INVENTORY_INVENTORY_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"

namespace crpp::resources {

// CRIU's image-set version "v1.1": every image but inventory has a head magic.
inline constexpr uint32_t kImagesVersion = 2;

struct Inventory {
  static constexpr std::string_view kName = "inventory";
  static constexpr Stage kStage = Stage::kInventory;
  static constexpr std::string_view kImages[] = {"INVENTORY"};
  static constexpr Scope kScope = Scope::kTree;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_INVENTORY_INVENTORY_H_
