#include "resources/default_resources.h"

namespace crpp {

const AnyEngine& DefaultEngine() {
  static const Engine<DefaultResources> engine;
  return engine;
}

}  // namespace crpp
