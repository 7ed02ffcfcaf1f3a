// The compile-time resource registry.
//
// A resource plugin is a type with static members:
//
//   struct Pipes {
//     static constexpr std::string_view kName = "pipes";
//     static constexpr Stage kStage = Stage::kShared;
//     static constexpr std::string_view kImages[] = {"PIPES", "PIPES_DATA"};
//     using Depends = DependsOn<>;            // optional: plugins it needs first
//     static absl::Status Dump(DumpContext&);
//     static absl::Status Restore(RestoreContext&);
//     static constexpr Scope kScope = Scope::kTree;  // optional (default kTask)
//   };
//
// A kTask plugin's Dump runs once per process of the tree (the context's
// pid/task/stat/... name the process), and its Restore runs inside each
// restored process; it may add RestoreShared(RestoreContext&), run once in
// the root before the other processes are forked (for what they share). Any
// plugin may add RestoreBeforeChildren(RestoreContext&), run in every task
// before it forks its children (for what they inherit from it). A
// kTree plugin's Dump and Restore run once for the whole tree, its Restore in
// the root before the fork.
//
// Registry<A, B, ...> checks, while compiling, that every plugin has the right
// shape, that names and images are unique and known, and that dependencies are
// registered and run before their dependents (an earlier stage, or the same
// stage and registered first). Engine<Registry> then runs
// the hooks in stage order. Plugins from outside the project are added with
// Registry<...>::With<Mine>. A mistake is a compile error whose text says what
// is wrong (tests/core/registry_compile_fail_test checks each message).
#ifndef CRPP_CORE_REGISTRY_H_
#define CRPP_CORE_REGISTRY_H_

#include <array>
#include <concepts>
#include <cstddef>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "core/context.h"
#include "core/images/magic.h"

namespace crpp {

template <class... Deps>
struct DependsOn {};

enum class Scope { kTask, kTree };

namespace registry_internal {

template <class R>
concept HasName = requires {
  { R::kName } -> std::convertible_to<std::string_view>;
};
template <class R>
concept HasStage = requires {
  { R::kStage } -> std::convertible_to<Stage>;
};
template <class R>
concept HasImages = requires {
  std::size(R::kImages);
}
&&std::convertible_to<decltype(R::kImages[0]), std::string_view>;
template <class R>
concept HasDump = requires(DumpContext& d) {
  { R::Dump(d) } -> std::same_as<absl::Status>;
};
template <class R>
concept HasRestore = requires(RestoreContext& r) {
  { R::Restore(r) } -> std::same_as<absl::Status>;
};

// Plugins without images declare `static constexpr std::string_view kImages[] = {""};`
// is awkward, so an empty list may be spelled `kNoImages`.
template <class R>
concept HasNoImages = requires {
  R::kNoImages;
};

template <class R>
struct DepsOf {
  using type = DependsOn<>;
};
template <class R>
requires requires { typename R::Depends; }
struct DepsOf<R> {
  using type = typename R::Depends;
};

template <class R>
constexpr std::size_t ImageCount() {
  if constexpr (HasNoImages<R>) {
    return 0;
  } else {
    return std::size(R::kImages);
  }
}

template <class R>
constexpr std::string_view ImageAt(std::size_t i) {
  if constexpr (HasNoImages<R>) {
    return {};
  } else {
    return R::kImages[i];
  }
}

template <class R>
constexpr bool IsTreeScope() {
  if constexpr (requires { R::kScope; }) {
    return R::kScope == Scope::kTree;
  } else {
    return false;
  }
}

template <class T, class... Ts>
inline constexpr bool kContains = (std::is_same_v<T, Ts> || ...);

}  // namespace registry_internal

// What every plugin must provide. Checked with one static_assert per member
// so the compiler says which one is missing.
template <class R>
concept Resource = registry_internal::HasName<R> && registry_internal::HasStage<R> &&
    (registry_internal::HasImages<R> ||
     registry_internal::HasNoImages<
         R>)&&registry_internal::HasDump<R>&& registry_internal::HasRestore<R>;

template <class R>
constexpr bool CheckPluginShape() {
  using namespace registry_internal;
  static_assert(HasName<R>, "resource plugin: missing `static constexpr std::string_view kName`");
  static_assert(HasStage<R>, "resource plugin: missing `static constexpr Stage kStage`");
  static_assert(HasImages<R> || HasNoImages<R>,
                "resource plugin: missing `static constexpr std::string_view kImages[]` "
                "(or `static constexpr bool kNoImages = true`)");
  static_assert(HasDump<R>, "resource plugin: missing `static absl::Status Dump(DumpContext&)`");
  static_assert(HasRestore<R>,
                "resource plugin: missing `static absl::Status Restore(RestoreContext&)`");
  return true;
}

template <class... Rs>
class Registry {
  static_assert((CheckPluginShape<Rs>() && ...));

  static constexpr std::size_t kCount = sizeof...(Rs);
  static constexpr std::array<std::string_view, kCount> kNames{Rs::kName...};
  static constexpr std::array<Stage, kCount> kStages{Rs::kStage...};

  static constexpr bool NamesUnique() {
    for (std::size_t i = 0; i < kCount; ++i) {
      if (kNames[i].empty()) return false;
      for (std::size_t j = i + 1; j < kCount; ++j) {
        if (kNames[i] == kNames[j]) return false;
      }
    }
    return true;
  }

  static constexpr std::size_t kImageTotal = (registry_internal::ImageCount<Rs>() + ... + 0);

  static constexpr std::array<std::string_view, kImageTotal> AllImages() {
    std::array<std::string_view, kImageTotal> out{};
    std::size_t n = 0;
    auto add = [&]<class R>() {
      for (std::size_t i = 0; i < registry_internal::ImageCount<R>(); ++i) {
        out[n++] = registry_internal::ImageAt<R>(i);
      }
    };
    (add.template operator()<Rs>(), ...);
    return out;
  }

  static constexpr bool ImagesKnown() {
    for (std::string_view name : AllImages()) {
      if (images::FindKindConstexpr(name) == nullptr) return false;
    }
    return true;
  }

  static constexpr bool ImagesUnique() {
    auto all = AllImages();
    for (std::size_t i = 0; i < all.size(); ++i) {
      for (std::size_t j = i + 1; j < all.size(); ++j) {
        // Two names for one magic (none today) would also be a clash.
        if (all[i] == all[j] ||
            images::FindKindConstexpr(all[i])->magic == images::FindKindConstexpr(all[j])->magic) {
          return false;
        }
      }
    }
    return true;
  }

  template <class R, class... Deps>
  static constexpr bool DepsRegistered(DependsOn<Deps...>) {
    return (registry_internal::kContains<Deps, Rs...> && ... && true);
  }
  // Where T is registered (kCount if it is not).
  template <class T>
  static constexpr std::size_t IndexOf() {
    std::size_t i = 0, found = kCount;
    ((std::is_same_v<T, Rs> ? (found = i, ++i) : ++i), ...);
    return found;
  }
  // A dependency runs first: in an earlier stage, or in the same stage and
  // registered before (registration order breaks ties, see StageOrder).
  template <class R, class... Deps>
  static constexpr bool DepsEarlier(DependsOn<Deps...>) {
    return ((static_cast<int>(Deps::kStage) < static_cast<int>(R::kStage) ||
             (Deps::kStage == R::kStage && IndexOf<Deps>() < IndexOf<R>())) &&
            ... && true);
  }

  static_assert(NamesUnique(),
                "resource registry: two plugins have the same kName (or one is empty)");
  static_assert(ImagesKnown(),
                "resource registry: a plugin claims an image that is not in the magic table "
                "(core/images/magic.h)");
  static_assert(ImagesUnique(), "resource registry: two plugins claim the same image");
  static_assert((DepsRegistered<Rs>(typename registry_internal::DepsOf<Rs>::type{}) && ...),
                "resource registry: a plugin depends on a plugin that is not registered");
  static_assert((DepsEarlier<Rs>(typename registry_internal::DepsOf<Rs>::type{}) && ...),
                "resource registry: a plugin depends on a plugin of a later stage, or of its "
                "own stage registered after it");

 public:
  // Naming this member forces the checks above to run (Engine does).
  static constexpr bool kChecked = true;

  template <class... More>
  using With = Registry<Rs..., More...>;

  static constexpr std::size_t size() { return kCount; }
  static constexpr std::array<std::string_view, kCount> names() { return kNames; }

  // Plugin indexes ordered by stage; registration order breaks ties.
  static constexpr std::array<std::size_t, kCount> StageOrder() {
    std::array<std::size_t, kCount> order{};
    for (std::size_t i = 0; i < kCount; ++i) order[i] = i;
    for (std::size_t i = 1; i < kCount; ++i) {  // insertion sort: stable, constexpr
      for (std::size_t j = i; j > 0 && kStages[order[j - 1]] > kStages[order[j]]; --j) {
        std::swap(order[j - 1], order[j]);
      }
    }
    return order;
  }

  // Calls f.template operator()<R>() for each plugin R in stage order; stops
  // at the first non-OK status and returns it.
  template <class F>
  static absl::Status ForEachInStageOrder(F&& f) {
    absl::Status status;
    for (std::size_t idx : StageOrder()) {
      status = Dispatch(idx, f, std::index_sequence_for<Rs...>{});
      if (!status.ok()) return status;
    }
    return status;
  }

 private:
  template <class F, std::size_t... I>
  static absl::Status Dispatch(std::size_t idx, F& f, std::index_sequence<I...>) {
    absl::Status status;
    ((idx == I ? (status = f.template operator()<Rs>(), true) : false) || ...);
    return status;
  }
};

}  // namespace crpp

#endif  // CRPP_CORE_REGISTRY_H_
