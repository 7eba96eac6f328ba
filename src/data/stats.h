// Per-band statistics of a dataset after its transform chain (for normalize(mean=…, std=…)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace shiftlab::data {

/// mean_b = Σ x / P, std_b = sqrt(Σ x² / P − mean_b²) over every pixel of every item used
/// (P pixels per band), accumulated in double.
struct BandStats {
  std::vector<double> mean, std;
  int64_t items = 0;
  int64_t pixels_per_band = 0;
  /// "normalize(mean=[…], std=[…])" ready for a transform chain.
  std::string normalize_spec() const;
};

/// Statistics over `max_items` items drawn without replacement with `seed` (0 or >= size:
/// every item), computed by `workers` threads (0 = this thread). Results do not depend on
/// the worker count (items are summed in a fixed order per fixed-size chunk, chunks merged in order).
BandStats compute_band_stats(const Dataset& ds, int64_t max_items = 0, int workers = 2, uint64_t seed = 0);

}  // namespace shiftlab::data
