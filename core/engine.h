// Engine<Registry>: runs the hooks of every registered resource plugin.
#ifndef CRPP_CORE_ENGINE_H_
#define CRPP_CORE_ENGINE_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/context.h"
#include "core/log.h"
#include "core/registry.h"

namespace crpp {

template <class Reg>
class Engine {
 public:
  using Resources = Reg;
  // Instantiates the registry, so its compile-time checks run here.
  static_assert(Reg::kChecked);

  // Runs the optional Precheck hook of each plugin: the checks that can refuse
  // a dump from /proc alone, before the target is stopped or touched.
  absl::Status Precheck(DumpContext& ctx) const {
    return Reg::ForEachInStageOrder([&ctx]<class R>() -> absl::Status {
      if constexpr (requires { R::Precheck(ctx); }) {
        absl::Status s = R::Precheck(ctx);
        if (!s.ok()) return Annotate(R::kName, "dump", s);
      }
      return absl::OkStatus();
    });
  }

  // Called with a plugin's name after its Dump succeeded; an error stops the
  // dump there, and is returned as it is.
  using AfterEach = std::function<absl::Status(std::string_view plugin)>;

  // Runs Dump of each plugin in stage order. The first failure stops the
  // dump; its status is prefixed with the plugin's name. `after_each` (may be
  // empty) lets the dump driver fail on purpose right after a given plugin
  // (DumpRequest::fail_after).
  absl::Status Dump(DumpContext& ctx, const AfterEach& after_each = nullptr) const {
    return Reg::ForEachInStageOrder([&ctx, &after_each]<class R>() -> absl::Status {
      log::Info("dump: %s (stage %s)", R::kName, StageName(R::kStage));
      absl::Status s = R::Dump(ctx);
      if (!s.ok()) return Annotate(R::kName, "dump", s);
      ctx.ran.emplace_back(R::kName);
      if (after_each) return after_each(R::kName);
      return s;
    });
  }

  absl::Status Restore(RestoreContext& ctx) const {
    return Reg::ForEachInStageOrder([&ctx]<class R>() -> absl::Status {
      log::Info("restore: %s (stage %s)", R::kName, StageName(R::kStage));
      absl::Status s = R::Restore(ctx);
      if (!s.ok()) return Annotate(R::kName, "restore", s);
      ctx.ran.emplace_back(R::kName);
      return s;
    });
  }

 private:
  static absl::Status Annotate(std::string_view plugin, std::string_view what,
                               const absl::Status& s) {
    return absl::Status(
        s.code(), std::string(plugin) + ": " + std::string(what) + ": " + std::string(s.message()));
  }
};

}  // namespace crpp

#endif  // CRPP_CORE_ENGINE_H_
