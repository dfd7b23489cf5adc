#include "vmm/orchestrator/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "host/base/text_table.h"
#include "proto/json.h"

namespace ucode::orchestrator {

absl::string_view StepName(Step step) {
  // The generated name is a static string, so the view outlives every caller.
  return absl::StripPrefix(v1::Step_Name(step), "STEP_");
}

const char* UpdateModeName(UpdateMode mode) {
  return mode == v1::UPDATE_MODE_FAST ? "fast" : "strict";  // unspecified is strict
}

int UpdateReport::total_vcpus() const {
  int n = 0;
  for (const VmReport& vm : vms) n += vm.vcpus;
  return n;
}

namespace {

void AgentsProto(const std::vector<AgentReply>& agents,
                 google::protobuf::RepeatedPtrField<v1::AgentReply>& out) {
  for (const AgentReply& a : agents) {
    v1::AgentReply& p = *out.Add();
    p.set_vm(a.vm);
    p.set_answered(a.answered);
    p.set_ok(a.status.ok());
    p.set_error(std::string(a.status.message()));
    p.set_message(a.message);
  }
}

v1::VmReport VmProto(const VmReport& vm) {
  v1::VmReport p;
  p.set_name(vm.name);
  p.set_kind(vm.kind);
  p.set_vcpus(vm.vcpus);
  p.set_park_latency_us(ProtoMicros(vm.park_latency));
  p.set_time_parked_us(ProtoMicros(vm.time_parked));
  p.set_guest_blackout_us(ProtoMicros(vm.guest_blackout));
  p.set_baseline_max_gap_us(ProtoMicros(vm.baseline_max_gap));
  p.set_guest_measured(vm.guest_measured);
  p.set_pause(vm.pause);
  p.set_guest_blackout_clock(vm.blackout_clock);
  p.set_guest_baseline_gap_us(ProtoMicros(vm.baseline_gap));
  p.set_guest_max_gap_us(ProtoMicros(vm.max_gap));
  // Revisions only where the guest's own reads measured them.
  if (vm.guest_measured) {
    p.set_revision_before(vm.revision_before);
    p.set_revision_after(vm.revision_after);
  }
  p.set_backwards(static_cast<uint32_t>(vm.backwards));
  p.set_deadman_releases(vm.deadman_releases);
  p.set_view(ViewStatusName(vm.view));
  p.set_view_detail(vm.view_detail);
  return p;
}

std::string Dur(uint32_t us) { return absl::FormatDuration(absl::Microseconds(us)); }

// What the VMs' park window held and for how long. On Linux a strict park spans the whole
// reload write, the kernel's firmware request and staging included.
std::string ParkWindowContents(const v1::UpdateReport& r) {
  if (!r.host_touched() || !r.has_host()) return "";
  const v1::HostLoad& l = r.host();
  const uint32_t held = r.rendezvous().held_us();
  if (r.mode() == v1::UPDATE_MODE_FAST) {
    return absl::StrFormat("held %s for the guest-view switch only; the host's %s (%s) ran "
                           "before, guests running",
                           Dur(held), l.window(), Dur(l.activation_window_us()));
  }
  std::string out = absl::StrFormat("held %s across the host's %s (%s)", Dur(held), l.window(),
                                    Dur(l.activation_window_us()));
  if (l.has_kernel_staged_after_us()) {
    absl::StrAppendFormat(&out, ", of which firmware request + kernel staging %s",
                          Dur(l.kernel_staged_after_us()));
  }
  if (!l.kernel_firmware().empty()) {
    absl::StrAppendFormat(&out, "; file installed and warmed before the park (%s)",
                          Dur(l.prepare_us()));
  }
  return out;
}

v1::StagingReport StagingProto(const staging::StagingReport& s) {
  v1::StagingReport out;
  out.set_image_bytes(static_cast<uint32_t>(s.image_bytes));
  out.set_staged(s.staged_count());
  out.set_elapsed_us(ProtoMicros(s.elapsed));
  out.set_summary(s.Summary());
  for (const staging::PackageStaging& p : s.packages) {
    v1::PackageStaging& o = *out.add_packages();
    o.set_package(p.package);
    o.set_cpu(p.cpu);
    o.set_mailbox(p.mailbox_addr);
    o.set_staged(p.staged());
    o.set_error(std::string(p.status.message()));
    o.set_bytes_sent(static_cast<uint32_t>(p.bytes_sent));
    o.set_transactions(p.transactions);
    o.set_retransmits(p.retransmits);
    o.set_elapsed_us(ProtoMicros(p.elapsed));
  }
  return out;
}

v1::HostLoad HostProto(const late_load::HostLoadReport& h) {
  const late_load::LateLoadResult& l = h.load;
  v1::HostLoad out;
  out.set_ok(l.status.ok());
  out.set_summary(l.summary);
  out.set_cpus(static_cast<uint32_t>(l.cpus.size()));
  out.set_primaries(l.updated);
  out.set_siblings(l.siblings);
  out.set_timed_out(l.timed_out);
  out.set_failed(l.failed);
  out.set_offline(l.offline);
  out.set_old_revision(l.old_revision);
  out.set_new_revision(l.new_revision);
  out.set_activation_window_us(ProtoMicros(l.activation_window));
  out.set_window(l.window_name);
  out.set_prepare_us(ProtoMicros(l.prepare));
  if (l.reload) {
    out.set_kernel_firmware(l.reload->kernel_path);
    if (l.reload->staged_after) out.set_kernel_staged_after_us(ProtoMicros(*l.reload->staged_after));
    for (const std::string& s : l.reload->shadowed) out.add_shadowed(s);
  }
  out.set_modelled_critical_path_us(ProtoMicros(l.modelled_critical_path));
  out.set_model(l.model_parameters);
  out.set_verify(h.verify.ok() ? "ok" : std::string(h.verify.message()));
  for (const late_load::CpuResult& c : l.cpus) {
    v1::CpuOutcome& o = *out.add_cpu_outcomes();
    o.set_cpu(c.cpu);
    o.set_outcome(late_load::CpuOutcomeName(c.outcome));
    o.set_detail(c.detail);
  }
  for (const std::string& line : l.kernel_log) out.add_kernel_log(line);
  return out;
}

}  // namespace

v1::UpdateReport ToProto(const UpdateReport& r) {
  v1::UpdateReport out;
  out.set_operation(r.operation);
  out.set_mode(r.mode);
  out.set_ok(r.status.ok());
  out.set_error(std::string(r.status.message()));
  out.set_error_code(static_cast<int32_t>(r.status.code()));
  out.set_last_step(r.last_step);
  out.set_host_touched(r.host_touched);
  if (!r.plan.empty()) {
    v1::ImagePlan& image = *out.mutable_image();
    image.set_selection(r.plan);
    image.set_signature(r.signature);
    image.set_platform_id(r.platform_id);
    if (r.new_revision != 0) {  // the plan's numbers were filled in (no image is revision 0)
      image.set_old_revision(r.old_revision);
      image.set_new_revision(r.new_revision);
    }
    image.set_date(r.image_date);
    image.set_bytes(static_cast<uint32_t>(r.image_bytes));
  }
  if (r.staging) *out.mutable_staging() = StagingProto(*r.staging);
  if (r.host) *out.mutable_host() = HostProto(*r.host);
  v1::Rendezvous& rv = *out.mutable_rendezvous();
  rv.set_vms(static_cast<uint32_t>(r.vms.size()));
  rv.set_vcpus(r.total_vcpus());
  rv.set_park_all_us(ProtoMicros(r.park_all));
  rv.set_host_call_us(ProtoMicros(r.host_call));
  rv.set_view_handover_us(ProtoMicros(r.set_views));
  rv.set_release_with_views_us(ProtoMicros(r.release_all));
  rv.set_held_us(ProtoMicros(r.held));
  rv.set_overhead_us(ProtoMicros(r.overhead));
  rv.set_guest_views_atomic(r.views_atomic);
  for (const VmReport& vm : r.vms) *out.add_vms() = VmProto(vm);
  AgentsProto(r.agents_prepare, *out.mutable_agents_prepare());
  AgentsProto(r.agents_complete, *out.mutable_agents_complete());
  for (const std::string& n : r.notes) out.add_notes(n);
  out.set_total_us(ProtoMicros(r.total));
  rv.set_park_window(ParkWindowContents(out));
  return out;
}

namespace {

std::string Hex(uint32_t v) { return absl::StrFormat("0x%x", v); }

void AppendStagingText(const v1::StagingReport& s, std::string& out) {
  absl::StrAppend(&out, "staging:    ", s.summary(), "\n");
  std::vector<std::vector<std::string>> rows = {
      {"package", "cpu", "mailbox", "bytes", "transactions", "retransmits", "time", "status"}};
  for (const v1::PackageStaging& p : s.packages()) {
    rows.push_back({absl::StrCat(p.package()), absl::StrCat(p.cpu()),
                    absl::StrFormat("0x%x", p.mailbox()), absl::StrCat(p.bytes_sent()),
                    absl::StrCat(p.transactions()), absl::StrCat(p.retransmits()),
                    Dur(p.elapsed_us()), p.staged() ? "staged" : p.error()});
  }
  out += TextTable(rows, "  ");
}

void AppendHostText(const v1::UpdateReport& r, std::string& out) {
  if (!r.has_host()) {
    absl::StrAppend(&out, "host load:  not run; the host is untouched\n");
    return;
  }
  const v1::HostLoad& l = r.host();
  absl::StrAppendFormat(&out, "host load:  %d CPUs: %s\n", l.cpus(), l.summary());
  absl::StrAppendFormat(&out, "            revision 0x%x -> 0x%x; %s %s", l.old_revision(),
                        l.new_revision(), l.window(), Dur(l.activation_window_us()));
  if (!l.model().empty()) {
    absl::StrAppendFormat(&out, " (modelled critical path %s; model: %s)",
                          Dur(l.modelled_critical_path_us()), l.model());
  }
  out += "\n";
  if (!l.kernel_firmware().empty()) {
    absl::StrAppendFormat(&out, "            kernel read %s (installed and warmed in %s, before any park)\n",
                          l.kernel_firmware(), Dur(l.prepare_us()));
    for (const std::string& s : l.shadowed()) {
      absl::StrAppendFormat(&out, "            shadowed, not read: %s\n", s);
    }
  }
  for (const v1::CpuOutcome& c : l.cpu_outcomes()) {
    if (!c.detail().empty()) {
      absl::StrAppendFormat(&out, "            cpu %d %s: %s\n", c.cpu(), c.outcome(), c.detail());
    }
  }
  for (const std::string& line : l.kernel_log()) {
    absl::StrAppend(&out, "            kernel: ", line, "\n");
  }
  absl::StrAppend(&out, "verify:     ",
                  l.verify() == "ok" ? "every online CPU reports the new revision" : l.verify(),
                  "\n");
}

// The guest's own measurement, with the clock named when it is not the VMM's TSC record.
std::string BlackoutCell(const v1::VmReport& vm) {
  if (vm.guest_measured()) return Dur(vm.guest_blackout_us());
  if (vm.guest_blackout_clock().empty()) return "-";
  return absl::StrCat(Dur(vm.guest_blackout_us()), " (", vm.guest_blackout_clock(), ")");
}

void AppendVmsText(const v1::UpdateReport& r, std::string& out) {
  if (r.vms().empty()) return;
  const v1::Rendezvous& rv = r.rendezvous();
  absl::StrAppendFormat(&out, "guests:     %d VMs, %d vCPUs (%s mode)\n", r.vms_size(),
                        rv.vcpus(), UpdateModeName(r.mode()));
  std::vector<std::vector<std::string>> rows = {
      {"vm", "kind", "vcpus", "park latency", "time parked", "guest blackout",
       "baseline max gap", "rev before", "rev after", "view"}};
  for (const v1::VmReport& vm : r.vms()) {
    std::string view = vm.view();
    if (!vm.view_detail().empty()) absl::StrAppend(&view, " (", vm.view_detail(), ")");
    if (vm.backwards() > 0) {
      absl::StrAppend(&view, "; saw revision go BACKWARDS ", vm.backwards(), "x");
    }
    if (vm.deadman_releases() > 0) {
      absl::StrAppend(&view, "; dead-man released ", vm.deadman_releases());
    }
    rows.push_back({vm.name(), vm.pause().empty() ? vm.kind() : absl::StrCat(vm.kind(), "/", vm.pause()),
                    absl::StrCat(vm.vcpus()), Dur(vm.park_latency_us()), Dur(vm.time_parked_us()),
                    BlackoutCell(vm), vm.guest_measured() ? Dur(vm.baseline_max_gap_us()) : "-",
                    vm.has_revision_before() ? Hex(vm.revision_before()) : "-",
                    vm.has_revision_after() ? Hex(vm.revision_after()) : "-", view});
  }
  out += TextTable(rows, "  ");
  if (r.host_touched()) {
    absl::StrAppendFormat(&out,
                          "rendezvous: park all %s, host call %s, view hand-over %s, release "
                          "with views %s; held %s\n",
                          Dur(rv.park_all_us()), Dur(rv.host_call_us()),
                          Dur(rv.view_handover_us()), Dur(rv.release_with_views_us()),
                          Dur(rv.held_us()));
    absl::StrAppendFormat(&out, "park:       %s\n", rv.park_window());
    if (!rv.guest_views_atomic()) {
      out += "guest view: set NON-ATOMICALLY, after the VMs ran again (see notes)\n";
    }
    absl::StrAppendFormat(&out, "overhead:   %s (%s)\n", Dur(rv.overhead_us()),
                          r.mode() == v1::UPDATE_MODE_FAST
                              ? "fast mode: the whole time parked; activation ran before"
                              : absl::StrCat("time parked minus the host ", r.host().window()));
  }
}

void AppendAgentsText(absl::string_view phase,
                      const google::protobuf::RepeatedPtrField<v1::AgentReply>& agents,
                      std::string& out) {
  for (const v1::AgentReply& a : agents) {
    absl::StrAppendFormat(&out, "agent %s %s: %s\n", a.vm(), phase,
                          !a.answered() ? absl::StrCat("no answer (", a.error(), ")")
                          : a.ok()      ? absl::StrCat("ok ", a.message())
                                        : a.error());
  }
}

}  // namespace

std::string ReportText(const v1::UpdateReport& r) {
  std::string out;
  absl::StrAppendFormat(&out, "operation:  %s, %s mode: %s\n", r.operation(), UpdateModeName(r.mode()),
                        r.ok() ? "OK" : absl::StrCat("FAILED: ", r.error()));
  if (r.has_image()) absl::StrAppend(&out, "image:      ", r.image().selection(), "\n");
  if (r.has_staging()) AppendStagingText(r.staging(), out);
  if (r.has_interrupted()) {
    const v1::Interruption& i = r.interrupted();
    absl::StrAppend(&out, "interrupted: during ", v1::Step_Name(i.interrupted_step()),
                    "; guests ", i.guests_confirmed_running() ? "confirmed running" : "NOT confirmed",
                    ": ", i.guests(), "\n");
  } else {
    AppendHostText(r, out);
  }
  AppendVmsText(r, out);
  AppendAgentsText("prepare", r.agents_prepare(), out);
  AppendAgentsText("complete", r.agents_complete(), out);
  for (const std::string& n : r.notes()) absl::StrAppend(&out, "note:       ", n, "\n");
  absl::StrAppendFormat(&out, "total:      %s (last step %s)\n", Dur(r.total_us()),
                        StepName(r.last_step()));
  return out;
}

}  // namespace ucode::orchestrator
