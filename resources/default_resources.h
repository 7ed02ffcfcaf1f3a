// The resource plugins the engine runs by default. Adding a family is one
// include and one name here; programs add their own with
// DefaultResources::With<Mine>.
#ifndef CRPP_RESOURCES_DEFAULT_RESOURCES_H_
#define CRPP_RESOURCES_DEFAULT_RESOURCES_H_

#include "core/engine.h"
#include "core/registry.h"
#include "resources/events/eventfd.h"
#include "resources/events/eventpoll.h"
#include "resources/events/signalfd.h"
#include "resources/events/timerfd.h"
#include "resources/files/fds.h"
#include "resources/files/ghost.h"
#include "resources/files/locks.h"
#include "resources/fsnotify/fanotify.h"
#include "resources/fsnotify/inotify.h"
#include "resources/inventory/inventory.h"
#include "resources/mm/memory.h"
#include "resources/mm/shmem.h"
#include "resources/pipes/fifo.h"
#include "resources/pipes/pipes.h"
#include "resources/sockets/unix.h"
#include "resources/task/core.h"
#include "resources/tree/tree.h"
#include "resources/tty/tty.h"

namespace crpp {

using DefaultResources =
    Registry<resources::Inventory, resources::Tree, resources::Pipes, resources::Fifos,
             resources::UnixSockets, resources::EventFd, resources::TimerFd, resources::SignalFd,
             resources::EventPoll, resources::Shmem, resources::Inotify, resources::Fanotify,
             resources::Ttys, resources::Ghosts, resources::Fds, resources::EventPollTargets,
             resources::Memory, resources::TaskCore, resources::FileLocks,
             resources::FileTableImage>;

// The default set as the drivers take it (DumpRequest::engine, ...).
const AnyEngine& DefaultEngine();

}  // namespace crpp

#endif  // CRPP_RESOURCES_DEFAULT_RESOURCES_H_
