// The data module in one include: domains (options.h, datasets.h), transforms, loaders,
// prepared data sets and band statistics.
#pragma once

#include "data/dataset.h"
#include "data/datasets.h"
#include "data/loader.h"
#include "data/options.h"
#include "data/prepare.h"
#include "data/stats.h"
#include "data/transforms.h"
