#include "vmm/orchestrator/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/json_writer.h"

namespace ucode::orchestrator {

const char* StepName(Step step) {
  switch (step) {
    case Step::kUnspecified: return "UNSPECIFIED";
    case Step::kValidated: return "VALIDATED";
    case Step::kStaging: return "STAGING";
    case Step::kStaged: return "STAGED";
    case Step::kParked: return "PARKED";
    case Step::kActivated: return "ACTIVATED";
    case Step::kGuestViewsSet: return "GUEST_VIEWS_SET";
    case Step::kReleased: return "RELEASED";
    case Step::kVerified: return "VERIFIED";
    case Step::kAgentsNotified: return "AGENTS_NOTIFIED";
    case Step::kDone: return "DONE";
  }
  return "?";
}

const char* UpdateModeName(UpdateMode mode) {
  return mode == UpdateMode::kStrict ? "strict" : "fast";
}

int UpdateReport::total_vcpus() const {
  int n = 0;
  for (const VmReport& vm : vms) n += vm.vcpus;
  return n;
}

namespace {

std::string Dur(absl::Duration d) { return absl::FormatDuration(d); }
std::string Hex(uint32_t v) { return absl::StrFormat("0x%x", v); }

// Rows of cells, left-aligned into columns two spaces apart.
std::string Table(const std::vector<std::vector<std::string>>& rows, absl::string_view indent) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line(indent);
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

void AppendStagingText(const staging::StagingReport& s, std::string& out) {
  absl::StrAppend(&out, "staging:    ", s.Summary(), "\n");
  std::vector<std::vector<std::string>> rows = {
      {"package", "cpu", "mailbox", "bytes", "transactions", "retransmits", "time", "status"}};
  for (const staging::PackageStaging& p : s.packages) {
    rows.push_back({absl::StrCat(p.package), absl::StrCat(p.cpu),
                    absl::StrFormat("0x%x", p.mailbox_addr), absl::StrCat(p.bytes_sent),
                    absl::StrCat(p.transactions), absl::StrCat(p.retransmits), Dur(p.elapsed),
                    p.staged() ? "staged" : std::string(p.status.message())});
  }
  out += Table(rows, "  ");
}

void AppendHostText(const UpdateReport& r, std::string& out) {
  if (!r.host) {
    absl::StrAppend(&out, "host load:  not run; the host is untouched\n");
    return;
  }
  const late_load::LateLoadResult& l = r.host->load;
  absl::StrAppendFormat(&out, "host load:  %d CPUs: %s\n", static_cast<int>(l.cpus.size()),
                        l.summary);
  absl::StrAppendFormat(&out, "            revision 0x%x -> 0x%x; %s %s", l.old_revision,
                        l.new_revision, l.window_name, Dur(l.activation_window));
  if (!l.model_parameters.empty()) {
    absl::StrAppendFormat(&out, " (modelled critical path %s; model: %s)",
                          Dur(l.modelled_critical_path), l.model_parameters);
  }
  out += "\n";
  if (l.reload) {
    absl::StrAppendFormat(&out, "            kernel read %s (installed and warmed in %s, before any park)\n",
                          l.reload->kernel_path, Dur(l.prepare));
    for (const std::string& s : l.reload->shadowed) {
      absl::StrAppendFormat(&out, "            shadowed, not read: %s\n", s);
    }
  }
  for (const std::string& line : l.kernel_log) {
    absl::StrAppendFormat(&out, "            kernel: %s\n", line);
  }
  for (const late_load::CpuResult& c : l.cpus) {
    if (!c.detail.empty()) {
      absl::StrAppendFormat(&out, "            cpu %d %s: %s\n", c.cpu,
                            late_load::CpuOutcomeName(c.outcome), c.detail);
    }
  }
  absl::StrAppend(&out, "verify:     ",
                  r.host->verify.ok() ? "every online CPU reports the new revision"
                                      : std::string(r.host->verify.message()),
                  "\n");
}

// What the VMs' park window held and for how long. On Linux a strict park spans the whole
// reload write, the kernel's firmware request and staging included.
std::string ParkWindowContents(const UpdateReport& r) {
  if (!r.host_touched || !r.host) return "";
  const late_load::LateLoadResult& l = r.host->load;
  if (r.mode == UpdateMode::kFast) {
    return absl::StrFormat("held %s for the guest-view switch only; the host's %s (%s) ran "
                           "before, guests running",
                           Dur(r.held), l.window_name, Dur(l.activation_window));
  }
  std::string out = absl::StrFormat("held %s across the host's %s (%s)", Dur(r.held),
                                    l.window_name, Dur(l.activation_window));
  if (l.reload && l.reload->staged_after) {
    absl::StrAppendFormat(&out, ", of which firmware request + kernel staging %s",
                          Dur(*l.reload->staged_after));
  }
  if (l.reload) {
    absl::StrAppendFormat(&out, "; file installed and warmed before the park (%s)",
                          Dur(l.prepare));
  }
  return out;
}

// The guest's own measurement, with the clock named when it is not the VMM's TSC record.
std::string BlackoutCell(const VmReport& vm) {
  if (vm.guest_measured) return Dur(vm.guest_blackout);
  if (vm.blackout_clock.empty()) return "-";
  return absl::StrCat(Dur(vm.guest_blackout), " (", vm.blackout_clock, ")");
}

void AppendVmsText(const UpdateReport& r, std::string& out) {
  if (r.vms.empty()) return;
  absl::StrAppendFormat(&out, "guests:     %d VMs, %d vCPUs (%s mode)\n",
                        static_cast<int>(r.vms.size()), r.total_vcpus(), UpdateModeName(r.mode));
  std::vector<std::vector<std::string>> rows = {
      {"vm", "kind", "vcpus", "park latency", "time parked", "guest blackout",
       "baseline max gap", "rev before", "rev after", "view"}};
  for (const VmReport& vm : r.vms) {
    std::string view = ViewStatusName(vm.view);
    if (!vm.view_detail.empty()) absl::StrAppend(&view, " (", vm.view_detail, ")");
    if (vm.backwards > 0) absl::StrAppend(&view, "; saw revision go BACKWARDS ", vm.backwards, "x");
    if (vm.deadman_releases > 0) absl::StrAppend(&view, "; dead-man released ", vm.deadman_releases);
    rows.push_back({vm.name, vm.pause.empty() ? vm.kind : absl::StrCat(vm.kind, "/", vm.pause),
                    absl::StrCat(vm.vcpus), Dur(vm.park_latency), Dur(vm.time_parked),
                    BlackoutCell(vm), vm.guest_measured ? Dur(vm.baseline_max_gap) : "-",
                    // Revisions only where the guest's own reads measured them.
                    vm.guest_measured ? Hex(vm.revision_before) : "-",
                    vm.guest_measured ? Hex(vm.revision_after) : "-", view});
  }
  out += Table(rows, "  ");
  if (r.host_touched) {
    absl::StrAppendFormat(&out,
                          "rendezvous: park all %s, host call %s, view hand-over %s, release "
                          "with views %s; held %s\n",
                          Dur(r.park_all), Dur(r.host_call), Dur(r.set_views), Dur(r.release_all),
                          Dur(r.held));
    absl::StrAppendFormat(&out, "park:       %s\n", ParkWindowContents(r));
    if (!r.views_atomic) out += "guest view: set NON-ATOMICALLY, after the VMs ran again (see notes)\n";
    absl::StrAppendFormat(&out, "overhead:   %s (%s)\n", Dur(r.overhead),
                          r.mode == UpdateMode::kStrict
                              ? absl::StrCat("time parked minus the host ", r.host->load.window_name)
                              : "fast mode: the whole time parked; activation ran before");
  }
}

void AppendAgentsText(absl::string_view phase, const std::vector<AgentReply>& agents,
                      std::string& out) {
  for (const AgentReply& a : agents) {
    absl::StrAppendFormat(&out, "agent %s %s: %s\n", a.vm, phase,
                          !a.answered ? absl::StrCat("no answer (", a.status.message(), ")")
                          : a.status.ok() ? absl::StrCat("ok ", a.message)
                                          : std::string(a.status.message()));
  }
}

void WriteStagingJson(const staging::StagingReport& s, JsonWriter& j) {
  j.BeginObject()
      .Num("image_bytes", static_cast<int64_t>(s.image_bytes))
      .Num("staged", s.staged_count())
      .Micros("elapsed_us", s.elapsed)
      .Key("packages")
      .BeginArray();
  for (const staging::PackageStaging& p : s.packages) {
    j.BeginObject()
        .Num("package", p.package)
        .Num("cpu", p.cpu)
        .Num("mailbox", static_cast<int64_t>(p.mailbox_addr))
        .Flag("staged", p.staged())
        .Str("error", p.status.message())
        .Num("bytes_sent", static_cast<int64_t>(p.bytes_sent))
        .Num("transactions", p.transactions)
        .Num("retransmits", p.retransmits)
        .Micros("elapsed_us", p.elapsed)
        .EndObject();
  }
  j.EndArray().EndObject();
}

void WriteHostJson(const late_load::HostLoadReport& h, JsonWriter& j) {
  const late_load::LateLoadResult& l = h.load;
  j.BeginObject()
      .Flag("ok", l.status.ok())
      .Str("summary", l.summary)
      .Num("cpus", static_cast<int64_t>(l.cpus.size()))
      .Num("primaries", l.updated)
      .Num("siblings", l.siblings)
      .Num("timed_out", l.timed_out)
      .Num("failed", l.failed)
      .Num("offline", l.offline)
      .Num("old_revision", l.old_revision)
      .Num("new_revision", l.new_revision)
      .Micros("activation_window_us", l.activation_window)
      .Str("window", l.window_name)
      .Str("kernel_firmware", l.reload ? l.reload->kernel_path : "")
      .Micros("prepare_us", l.prepare)
      .Micros("kernel_staged_after_us",
              l.reload && l.reload->staged_after ? *l.reload->staged_after : absl::ZeroDuration())
      .Micros("modelled_critical_path_us", l.modelled_critical_path)
      .Str("model", l.model_parameters)
      .Str("verify", h.verify.ok() ? "ok" : h.verify.message())
      .Key("kernel_log")
      .BeginArray();
  for (const std::string& line : l.kernel_log) j.String(line);
  j.EndArray().EndObject();
}

void WriteAgentsJson(absl::string_view key, const std::vector<AgentReply>& agents,
                     JsonWriter& j) {
  j.Key(key).BeginArray();
  for (const AgentReply& a : agents) {
    j.BeginObject()
        .Str("vm", a.vm)
        .Flag("answered", a.answered)
        .Flag("ok", a.status.ok())
        .Str("error", a.status.message())
        .Str("message", a.message)
        .EndObject();
  }
  j.EndArray();
}

}  // namespace

std::string ReportText(const UpdateReport& r) {
  std::string out;
  absl::StrAppendFormat(&out, "operation:  %s, %s mode: %s\n", r.operation, UpdateModeName(r.mode),
                        r.status.ok() ? "OK" : absl::StrCat("FAILED: ", r.status.message()));
  if (!r.plan.empty()) absl::StrAppend(&out, "image:      ", r.plan, "\n");
  if (r.staging) AppendStagingText(*r.staging, out);
  AppendHostText(r, out);
  AppendVmsText(r, out);
  AppendAgentsText("prepare", r.agents_prepare, out);
  AppendAgentsText("complete", r.agents_complete, out);
  for (const std::string& n : r.notes) absl::StrAppend(&out, "note:       ", n, "\n");
  absl::StrAppendFormat(&out, "total:      %s (last step %s)\n", Dur(r.total), StepName(r.last_step));
  return out;
}

std::string ReportJson(const UpdateReport& r) {
  JsonWriter j;
  j.BeginObject()
      .Str("operation", r.operation)
      .Str("mode", UpdateModeName(r.mode))
      .Flag("ok", r.status.ok())
      .Str("error", r.status.message())
      .Str("last_step", StepName(r.last_step))
      .Flag("host_touched", r.host_touched)
      .Key("image")
      .BeginObject()
      .Str("selection", r.plan)
      .Num("signature", r.signature)
      .Num("platform_id", r.platform_id)
      .Num("old_revision", r.old_revision)
      .Num("new_revision", r.new_revision)
      .Str("date", r.image_date)
      .Num("bytes", static_cast<int64_t>(r.image_bytes))
      .EndObject();
  j.Key("staging");
  if (r.staging) {
    WriteStagingJson(*r.staging, j);
  } else {
    j.Null();
  }
  j.Key("host");
  if (r.host) {
    WriteHostJson(*r.host, j);
  } else {
    j.Null();
  }
  j.Key("rendezvous")
      .BeginObject()
      .Num("vms", static_cast<int64_t>(r.vms.size()))
      .Num("vcpus", r.total_vcpus())
      .Micros("park_all_us", r.park_all)
      .Micros("host_call_us", r.host_call)
      .Micros("view_handover_us", r.set_views)
      .Micros("release_with_views_us", r.release_all)
      .Micros("held_us", r.held)
      .Micros("overhead_us", r.overhead)
      .Str("park_window", ParkWindowContents(r))
      .Flag("guest_views_atomic", r.views_atomic)
      .EndObject();
  j.Key("vms").BeginArray();
  for (const VmReport& vm : r.vms) {
    j.BeginObject()
        .Str("name", vm.name)
        .Str("kind", vm.kind)
        .Num("vcpus", vm.vcpus)
        .Micros("park_latency_us", vm.park_latency)
        .Micros("time_parked_us", vm.time_parked)
        .Micros("guest_blackout_us", vm.guest_blackout)
        .Micros("baseline_max_gap_us", vm.baseline_max_gap)
        .Flag("guest_measured", vm.guest_measured)
        .Str("pause", vm.pause)
        .Str("guest_blackout_clock", vm.blackout_clock)
        .Micros("guest_baseline_gap_us", vm.baseline_gap)
        .Micros("guest_max_gap_us", vm.max_gap)
        .Num("revision_before", vm.revision_before)
        .Num("revision_after", vm.revision_after)
        .Num("backwards", static_cast<int64_t>(vm.backwards))
        .Num("deadman_releases", vm.deadman_releases)
        .Str("view", ViewStatusName(vm.view))
        .Str("view_detail", vm.view_detail)
        .EndObject();
  }
  j.EndArray();
  WriteAgentsJson("agents_prepare", r.agents_prepare, j);
  WriteAgentsJson("agents_complete", r.agents_complete, j);
  j.Key("notes").BeginArray();
  for (const std::string& n : r.notes) j.String(n);
  j.EndArray().Micros("total_us", r.total).EndObject();
  return j.str();
}

}  // namespace ucode::orchestrator
