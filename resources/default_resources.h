// The resource plugins the engine runs by default. Adding a family is one
// include and one name here; programs add their own with
// DefaultResources::With<Mine>.
#ifndef CRPP_RESOURCES_DEFAULT_RESOURCES_H_
#define CRPP_RESOURCES_DEFAULT_RESOURCES_H_

#include "core/registry.h"
#include "resources/files/fds.h"
#include "resources/files/ghost.h"
#include "resources/files/locks.h"
#include "resources/inventory/inventory.h"
#include "resources/mm/memory.h"
#include "resources/pipes/pipes.h"
#include "resources/task/core.h"
#include "resources/tree/tree.h"

namespace crpp {

using DefaultResources =
    Registry<resources::Inventory, resources::Tree, resources::Pipes, resources::Ghosts,
             resources::Fds, resources::Memory, resources::TaskCore, resources::FileLocks,
             resources::FileTableImage>;

}  // namespace crpp

#endif  // CRPP_RESOURCES_DEFAULT_RESOURCES_H_
