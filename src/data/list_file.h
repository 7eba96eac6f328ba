// TLlib / Office list files: one image per line, "relative/path [label]", blank lines and
// '#' comments skipped; the label is the last whitespace-separated field when it is an integer.
// Paths are relative to the data root unless absolute. (Parsing only: no file system access, no
// torch; the list_file dataset kind in datasets.cpp opens the images.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shiftlab::data {

/// The largest number of classes a dataset may declare through its labels: a label must lie in
/// [0, kMaxClasses) (or be −1 for "no label"); a larger one is a corrupt file, not a head with
/// millions of outputs to allocate.
constexpr int64_t kMaxClasses = 1000000;

struct ListFileEntries {
  std::vector<std::string> paths;  ///< root joined unless absolute
  std::vector<int64_t> labels;     ///< −1 where the line has no label
  std::vector<int64_t> rows;       ///< the 1-based line number of each entry (for errors)
};

/// Parses the text of list file `list_name` (named in errors with the line number: a NUL byte,
/// a negative label, a non-integer label such as "1.5" or one >= kMaxClasses).
ListFileEntries parse_list_file(const std::string& text, const std::string& list_name, const std::string& root);
/// With labelled = true (a labelled domain), a list whose lines carry labels must give every line
/// one: the first line without a label is an Error naming the list and the line (an item labelled
/// −1 would reach the loss as a class index). A list with no label at all stays unlabelled.
void check_list_labels(const ListFileEntries& e, const std::string& list_name, bool labelled);

}  // namespace shiftlab::data
