// The rehearsal's output: a per-SKU table for the test log and one JSON object for
// TEST_UNDECLARED_OUTPUTS_DIR (or --json).
#ifndef UCODE_HOST_REHEARSAL_REPORT_H_
#define UCODE_HOST_REHEARSAL_REPORT_H_

#include <string>

#include "host/rehearsal/rehearsal.h"

namespace ucode::rehearsal {

// Columns: SKU, hosts, shape, image (file@offset), revision old -> new, match, min-rev,
// window staged, window unstaged, deadline, verdict; then the failures, one per line.
std::string ReportTable(const RehearsalReport& report);

// ucode.v1.RehearsalReport (proto/ucode/v1/rehearsal.proto) through protobuf's JSON printer.
std::string ReportJson(const RehearsalReport& report);

}  // namespace ucode::rehearsal

#endif  // UCODE_HOST_REHEARSAL_REPORT_H_
