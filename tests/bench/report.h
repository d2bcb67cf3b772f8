// Printing: a table per aspect (rates, latency, CPU per operation) with one row per scenario, one
// column per target and ratio columns comparing the first target with each of the others.
#pragma once

#include <vector>

#include "measure.h"
#include "options.h"

namespace mqtls::bench {

// One line for a finished run, printed while the benchmark is going.
void printProgress(const Scenario& scenario, const RunResult& result);

void printReport(const Options& options, std::vector<RunResult>& results);

}  // namespace mqtls::bench
