// Engine<Registry>: runs the hooks of every registered resource plugin.
// AnyEngine: the same without the registry's type, what the dump and restore
// drivers take, so that a program linking the library runs its own set
// (Engine<DefaultResources::With<Mine>>) through them.
#ifndef CRPP_CORE_ENGINE_H_
#define CRPP_CORE_ENGINE_H_

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "core/context.h"
#include "core/log.h"
#include "core/registry.h"

namespace crpp {

class AnyEngine {
 public:
  // Called with a plugin's name after its Dump succeeded; an error stops the
  // dump there, and is returned as it is.
  using AfterEach = std::function<absl::Status(std::string_view plugin)>;

  virtual ~AnyEngine() = default;
  // The plugins' names, in registration order.
  virtual std::vector<std::string_view> PluginNames() const = 0;
  // See Engine below.
  virtual absl::Status Precheck(DumpContext& ctx) const = 0;
  virtual absl::Status Dump(DumpContext& ctx, const AfterEach& after_each) const = 0;
  virtual absl::Status RestoreEarly(RestoreContext& ctx) const = 0;
  virtual absl::Status RestoreShared(RestoreContext& ctx) const = 0;
  virtual absl::Status RestoreBeforeChildren(RestoreContext& ctx) const = 0;
  virtual absl::Status RestoreLate(RestoreContext& ctx) const = 0;
};

template <class Reg>
class Engine final : public AnyEngine {
 public:
  using Resources = Reg;
  // Instantiates the registry, so its compile-time checks run here.
  static_assert(Reg::kChecked);

  std::vector<std::string_view> PluginNames() const override {
    const auto names = Reg::names();
    return {names.begin(), names.end()};
  }

  // Runs the optional Precheck hook of each plugin: the checks that can refuse
  // a dump from /proc alone, before the target is stopped or touched.
  absl::Status Precheck(DumpContext& ctx) const override {
    return Reg::ForEachInStageOrder([&ctx]<class R>() -> absl::Status {
      if constexpr (requires { R::Precheck(ctx); }) {
        const auto start = std::chrono::steady_clock::now();
        absl::Status s = ForEachTask<R>(
            ctx, [&ctx] { return R::Precheck(ctx); }, "dump");
        log::Debug("precheck: %s took %d us", R::kName,
                   std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count());
        return s;
      }
      return absl::OkStatus();
    });
  }

  // Runs Dump of each plugin in stage order (a per-task plugin for every task
  // of ctx.tree before the next plugin). The first failure stops the dump;
  // its status is prefixed with the plugin's name. `after_each` (may be
  // empty) lets the dump driver fail on purpose right after a given plugin
  // (DumpRequest::fail_after).
  // Work a plugin deferred (DumpContext::Defer) is finished when its stage
  // ends, and dropped (undone) when the dump fails.
  absl::Status Dump(DumpContext& ctx, const AfterEach& after_each) const override {
    absl::Status status = Reg::ForEachInStageOrder([&ctx, &after_each]<class R>() -> absl::Status {
      log::Info("dump: %s (stage %s)", R::kName, StageName(R::kStage));
      absl::Status s = ForEachTask<R>(
          ctx, [&ctx] { return R::Dump(ctx); }, "dump");
      if (s.ok()) {
        s = ctx.FinishAllDeferred();
        if (!s.ok()) s = Annotate(R::kName, "dump", s);
      }
      if (!s.ok()) return s;
      ctx.ran.emplace_back(R::kName);
      if (after_each) return after_each(R::kName);
      return s;
    });
    if (!status.ok()) ctx.DropDeferred();
    return status;
  }

  // Restore runs in parts so the driver can fork the tree in between:
  // RestoreEarly (per-task plugins up to the tree stage: sessions, groups) in
  // every task, RestoreShared (kTree plugins and RestoreShared hooks) in the
  // root before any other task exists, RestoreBeforeChildren in every task
  // before it forks its children, RestoreLate (the other per-task plugins) in
  // every task. Restore() runs them all, for a lone task.
  absl::Status Dump(DumpContext& ctx) const { return Dump(ctx, nullptr); }
  absl::Status RestoreEarly(RestoreContext& ctx) const override { return RestoreTask(ctx, true); }
  absl::Status RestoreLate(RestoreContext& ctx) const override { return RestoreTask(ctx, false); }
  absl::Status RestoreShared(RestoreContext& ctx) const override {
    return Reg::ForEachInStageOrder([&ctx]<class R>() -> absl::Status {
      absl::Status s;
      if constexpr (registry_internal::IsTreeScope<R>()) {
        log::Info("restore: %s (stage %s, whole tree)", R::kName, StageName(R::kStage));
        s = R::Restore(ctx);
        if (s.ok()) ctx.ran.emplace_back(R::kName);
      } else if constexpr (requires { R::RestoreShared(ctx); }) {
        log::Info("restore: %s: shared part (stage %s)", R::kName, StageName(R::kStage));
        s = R::RestoreShared(ctx);
      }
      return s.ok() ? s : Annotate(R::kName, "restore", s);
    });
  }
  // In every task once the shared part is there (in the root right after
  // RestoreShared, in the others right after their fork), before the task
  // forks its own children: the optional RestoreBeforeChildren hook of each
  // plugin (of either scope) sets up what the children inherit from the
  // task, such as its controlling terminal.
  absl::Status RestoreBeforeChildren(RestoreContext& ctx) const override {
    return Reg::ForEachInStageOrder([&ctx]<class R>() -> absl::Status {
      if constexpr (requires { R::RestoreBeforeChildren(ctx); }) {
        absl::Status s = R::RestoreBeforeChildren(ctx);
        return s.ok() ? s : Annotate(R::kName, "restore", s);
      }
      return absl::OkStatus();
    });
  }
  absl::Status Restore(RestoreContext& ctx) const {
    absl::Status s = RestoreEarly(ctx);
    if (s.ok()) s = RestoreShared(ctx);
    if (s.ok()) s = RestoreBeforeChildren(ctx);
    if (s.ok()) s = RestoreLate(ctx);
    return s;
  }

 private:
  // Runs `hook` for each task of ctx.tree (selected in ctx) for a per-task
  // plugin, once for a kTree plugin or when there is no tree (plugin tests).
  template <class R, class F>
  static absl::Status ForEachTask(DumpContext& ctx, const F& hook, std::string_view what) {
    if (registry_internal::IsTreeScope<R>() || ctx.tree.empty()) {
      absl::Status s = hook();
      return s.ok() ? s : Annotate(R::kName, what, s);
    }
    for (const TreeTask& t : ctx.tree) {
      ctx.Select(t);
      absl::Status s = hook();
      if (!s.ok()) return Annotate(R::kName, what, s);
    }
    return absl::OkStatus();
  }

  static absl::Status RestoreTask(RestoreContext& ctx, bool early) {
    return Reg::ForEachInStageOrder([&ctx, early]<class R>() -> absl::Status {
      if constexpr (registry_internal::IsTreeScope<R>()) {
        return absl::OkStatus();
      } else {
        if ((R::kStage <= Stage::kTree) != early) return absl::OkStatus();
        log::Info("restore: %s (stage %s) in pid %d", R::kName, StageName(R::kStage), ctx.pid);
        absl::Status s = R::Restore(ctx);
        if (!s.ok()) return Annotate(R::kName, "restore", s);
        ctx.ran.emplace_back(R::kName);
        return s;
      }
    });
  }

  static absl::Status Annotate(std::string_view plugin, std::string_view what,
                               const absl::Status& s) {
    return absl::Status(
        s.code(), std::string(plugin) + ": " + std::string(what) + ": " + std::string(s.message()));
  }
};

}  // namespace crpp

#endif  // CRPP_CORE_ENGINE_H_
