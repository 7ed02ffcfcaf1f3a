// criu's configuration-file syntax, turned into the argument vector criu would hand to getopt.
//
// One option per line, written as its long name without the dashes, optionally followed by one
// argument; "#" starts a comment; an argument may be double-quoted (with \" for a literal
// quote). See TokenizeConfig() for the exact rules, which follow criu 3.17.1 including its
// oddities, because a config file that criu accepts must mean the same thing to us.
#ifndef CRPP_CORE_CONFIG_FILE_H_
#define CRPP_CORE_CONFIG_FILE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp {

// Splits the text of a config file into getopt-ready words: each line yields "--<first word>"
// and, if present, its argument as a separate word. `path` only labels error messages.
//
// Rules, line by line (criu's, oddities included; checked against criu 3.17.1 on some 2000
// generated files):
//  - Leading whitespace is skipped; blank lines and lines whose first word starts with '#' are
//    ignored.
//  - The option name ends at the first space of the line or, if the line has no space, at the
//    first tab. So "work-dir\t\"a b\"" splits inside the quotes, like criu does.
//  - A line with no space or tab is a lone option: "--" + the whole line, trailing '\r' and
//    glued "#..." included (criu then reports an unknown option).
//  - An argument starting with '"' runs to the next '"' not preceded by a backslash; `""` is an
//    empty argument; a missing closing quote is an error. After the closing quote only blanks
//    or a comment may follow, except that the very last character of the line is not checked.
//  - An unquoted argument ends at its first space; after it only blanks may follow, again not
//    checking the last character (so "veth-pair a b" quietly means "--veth-pair a").
//  - In either kind of argument, backslashes directly before '"' are dropped and everything
//    from the first '#' on is cut off, even inside quotes ("a#b" gives "a").
//  - criu then re-runs its "one argument only" check from a position that is off whenever
//    the argument is quoted or had escapes; FinishArgument() in the .cc file models that, so
//    that e.g. criu's own man-page example `work-dir "/home/USERNAME/criu/my \"work\" directory"`
//    is rejected here as it is by criu 3.17.1.
//  - A whitespace-only last line without a newline yields a bare "--" (harmless: it ends option
//    parsing at the end of the file).
absl::StatusOr<std::vector<std::string>> TokenizeConfig(std::string_view text,
                                                        std::string_view path);

}  // namespace crpp

#endif  // CRPP_CORE_CONFIG_FILE_H_
