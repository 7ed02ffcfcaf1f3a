// Which terminal a character device number is: the Unix98 pty master
// (/dev/ptmx), a pty slave (/dev/pts/N) and its index, or another kind of
// terminal, named for messages. Shared by the tty plugin, which dumps ptys,
// and the fds plugin, which refuses the terminals nobody dumps.
#ifndef CRPP_RESOURCES_TTY_DEVICES_H_
#define CRPP_RESOURCES_TTY_DEVICES_H_

#include <sys/sysmacros.h>
#include <sys/types.h>

#include <cstdio>
#include <string>

namespace crpp::resources::tty {

// Device numbers of <linux/major.h>.
inline constexpr unsigned kTtyMajor = 4;     // virtual consoles and 8250 serial lines
inline constexpr unsigned kTtyAuxMajor = 5;  // /dev/tty, /dev/console, /dev/ptmx
inline constexpr unsigned kPtmxMinor = 2;
inline constexpr unsigned kPtsMajor = 136;        // UNIX98_PTY_SLAVE_MAJOR
inline constexpr unsigned kPtsMajorCount = 8;     // 136..143 (minors are 20 bits wide now)
inline constexpr unsigned kMaxConsoleMinor = 63;  // MAX_NR_CONSOLES
inline constexpr unsigned kUsbSerialMajor = 188;
inline constexpr unsigned kLowDenseSerialMajor = 204;

inline bool IsPtyMaster(dev_t rdev) {
  return major(rdev) == kTtyAuxMajor && minor(rdev) == kPtmxMinor;
}

inline bool IsPtySlave(dev_t rdev) {
  return major(rdev) >= kPtsMajor && major(rdev) < kPtsMajor + kPtsMajorCount;
}

// The N of /dev/pts/N. The kernel registers all slaves under major 136 with
// 20-bit minors; the other majors are the old 8-bit split of the same range.
inline unsigned PtyIndex(dev_t rdev) { return (major(rdev) - kPtsMajor) * 256 + minor(rdev); }

// True for the devices of every terminal driver we know of.
inline bool IsTerminalDevice(dev_t rdev) {
  unsigned m = major(rdev);
  return m == kTtyMajor || m == kTtyAuxMajor || IsPtySlave(rdev) || m == kUsbSerialMajor ||
         m == kLowDenseSerialMajor;
}

// What kind of terminal RDEV is, for messages: "a pty slave", "a virtual
// console", ...
inline std::string TerminalKind(dev_t rdev) {
  unsigned m = major(rdev), n = minor(rdev);
  if (IsPtyMaster(rdev)) return "a pty master";
  if (IsPtySlave(rdev)) return "a pty slave";
  if (m == kTtyAuxMajor && n == 0) return "the controlling-terminal alias (/dev/tty)";
  if (m == kTtyAuxMajor && n == 1) return "the system console";
  if (m == kTtyMajor && n <= kMaxConsoleMinor) return "a virtual console";
  if (m == kTtyMajor || m == kUsbSerialMajor || m == kLowDenseSerialMajor) return "a serial line";
  return "a terminal";
}

// How criu(8) names a terminal in `--external tty[RDEV:DEV]` and
// `--inherit-fd fd[N]:tty[RDEV:DEV]`: its device and the device of the file
// system its node is on, in hex.
inline std::string ExternalKey(dev_t rdev, dev_t dev) {
  char key[64];
  snprintf(key, sizeof key, "tty[%llx:%llx]", static_cast<unsigned long long>(rdev),
           static_cast<unsigned long long>(dev));
  return key;
}

}  // namespace crpp::resources::tty

#endif  // CRPP_RESOURCES_TTY_DEVICES_H_
