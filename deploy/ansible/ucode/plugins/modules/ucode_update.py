#!/usr/bin/python
# ucode_update: applies a microcode update on this host through its ucoded, or says why not.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ucode_update
short_description: Late-load a microcode update on a KVM host through its ucoded
description:
  - Validates the image file for this host's CPU with ucoded's own selection, then runs
    ucoded's whole update operation (stage, park every vCPU, host load, guest views,
    release, verify, notify guest agents) and returns its report.
  - Idempotent. Reports C(changed=false) when the host already runs the image's revision
    (or a newer one), or when no image in the file fits this CPU (C(plan=no_fit)).
  - Fails with ucoded's own error text when the operation fails or is interrupted, when
    the image is invalid, or when it fits but the minimal-revision rule forbids a late load.
    A host that is not on the new revision is never reported as done.
  - Check mode validates and selects, and says what would happen; it changes nothing.
  - Talks to ucoded only through C(ucodectl --server unix:SOCKET ... --json).
options:
  src:
    description:
      - Image file on the controller, copied to a private temporary directory on the host
        and removed afterwards. Mutually exclusive with I(image).
    type: path
  image:
    description: Image file already on the managed host (e.g. C(/lib/firmware/intel-ucode/06-8f-08)).
    type: path
  mode:
    description:
      - C(strict) holds every vCPU across the host activation; C(fast) activates first and
        holds vCPUs only to switch their view of the revision.
    type: str
    choices: [strict, fast]
    default: strict
  park_deadline:
    description: Deadline for every vCPU of every VM to park (C(500us), C(20ms), C(1s)); ucoded's default when unset.
    type: str
  max_guest_blackout:
    description:
      - Fail the host when any guest reports a longer blackout than this (C(20ms)). Only
        guests that measure their own blackout (ucode-vmm VMs) are checked; the update has
        already happened when this fails, and the failure stops the rollout.
    type: str
  agent_timeout:
    description: Bound on each guest agent's answer (C(3s)); ucoded's default when unset.
    type: str
  ignore_minrev:
    description: Load even an image the minimal-revision rule calls unsafe (the kernel's default; ucode enforces the rule unless told).
    type: bool
    default: false
  guests:
    description: Update only these guests, by name; every guest ucoded manages when empty.
    type: list
    elements: str
    default: []
  request_id:
    description: Makes a retried apply idempotent in ucoded (the same id never applies twice).
    type: str
extends_documentation_fragment: ucode.fleet.ucoded
'''

EXAMPLES = r'''
- name: Update microcode, holding no guest more than 20 ms
  ucode.fleet.ucode_update:
    src: files/intel-ucode/06-8f-08
    mode: strict
    max_guest_blackout: 20ms
  register: ucode_result
'''

RETURN = r'''
plan:
  description: C(update), C(current) (already runs the image's revision or newer) or C(no_fit).
  returned: always
  type: str
host:
  description: C(hostname), C(signature) (hex) and C(platform_id), as ucoded describes the host.
  returned: when ucoded answered
  type: dict
old_revision:
  description: Revision before (the oldest online CPU), hex.
  returned: always
  type: str
new_revision:
  description:
    - Revision after (or that would be loaded, in check mode), hex. After a failed
      operation, the oldest revision the host's CPUs report (with every distinct one in
      C(revisions_after)); null when ucoded cannot be asked.
  returned: always
  type: str
mode:
  description: The update mode.
  returned: always
  type: str
operation:
  description: ucoded's operation name (C(operations/N)).
  returned: when an update ran
  type: str
vms:
  description: Per guest, C(name), C(kind), C(vcpus), C(park_time_us), C(guest_blackout_us) (null when the guest does not measure it) and C(view).
  returned: when an update ran
  type: list
report:
  description: ucoded's full operation report.
  returned: when an update ran
  type: dict
started:
  description: Unix time the update began on this host.
  returned: when an update ran
  type: float
finished:
  description: Unix time the update ended on this host.
  returned: when an update ran
  type: float
'''

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ucode.fleet.plugins.module_utils.ucodectl import (
    CONNECTION_ARGS, PLAN_UPDATE, PlanError, Ucodectl, UcodectlError, hex_value, host_facts,
    parse_duration_us, plan_update)


def fail(module, result, msg):
    result['msg'] = msg
    module.fail_json(**result)


def apply_args(params, image, durations):
    args = ['apply', image, '--mode', params['mode']]
    if durations['park_deadline'] is not None:
        args += ['--park-deadline-us', str(durations['park_deadline'])]
    if durations['agent_timeout'] is not None:
        # ucodectl takes milliseconds; never round a short bound down to "daemon default".
        args += ['--agent-timeout-ms', str(max(1, (durations['agent_timeout'] + 999) // 1000))]
    if params['ignore_minrev']:
        args.append('--ignore-minrev')
    for guest in params['guests']:
        args += ['--guest', guest]
    if params['request_id']:
        args += ['--request-id', params['request_id']]
    return args


def vm_rows(report):
    rows = []
    for vm in report.get('vms', []):
        rows.append(dict(
            name=vm.get('name', ''), kind=vm.get('kind', ''), vcpus=vm.get('vcpus', 0),
            park_time_us=vm.get('time_parked_us', 0),
            guest_blackout_us=vm.get('guest_blackout_us', 0) if vm.get('guest_measured') else None,
            view=vm.get('view', '')))
    return rows


def revisions_after(ctl, result):
    """After a failed operation, what the host really runs (it may be half-updated), so
    that no result claims the selected revision."""
    try:
        host = host_facts(ctl.describe(), [])
    except UcodectlError as e:
        result.update(new_revision=None, revisions_after=[], describe_error=str(e))
        return
    result.update(new_revision=host['revision'], revisions_after=host['revisions'])


def run_update(module, ctl, image, plan, durations, result):
    result['started'] = time.time()
    try:
        rc, op, _ = ctl.run_json(*apply_args(module.params, image, durations))
    except UcodectlError as e:
        # The watch can break after the operation started (ucoded stopped or restarted):
        # the host may have been updated, and only ucoded can say.
        started = re.search(r'(operations/\S+) started', e.stderr)
        if not started:
            raise
        result.update(operation=started.group(1), changed=True, finished=time.time())
        revisions_after(ctl, result)
        fail(module, result, '%s: %s; its outcome is unknown here: ask ucoded '
             '(ucodectl get %s)' % (started.group(1), e, started.group(1)))
    result['finished'] = time.time()
    result['operation'] = op.get('name', '')
    report = op.get('report') or {}  # ucode.v1.UpdateReport as protobuf JSON
    result['report'] = report
    result['vms'] = vm_rows(report)
    result['changed'] = bool(report.get('host_touched', True))
    state = op.get('state', 'OPERATION_STATE_UNSPECIFIED')
    if rc != 0 or state != 'OPERATION_STATE_SUCCEEDED':
        error = op.get('error', {}).get('message') or report.get('error') or state
        revisions_after(ctl, result)
        fail(module, result, '%s %s: %s' % (result['operation'], state, error))
    loaded = (report.get('host') or {}).get('new_revision')
    result['new_revision'] = hex_value(loaded)
    if result['new_revision'] != plan['new_revision']:
        fail(module, result, '%s succeeded but the host runs %s, not the selected %s'
             % (result['operation'], result['new_revision'], plan['new_revision']))
    limit = durations['max_guest_blackout']
    over = [vm for vm in result['vms']
            if limit is not None and vm['guest_blackout_us'] is not None
            and vm['guest_blackout_us'] > limit]
    if over:
        fail(module, result, 'guest blackout over max_guest_blackout %dus: %s' % (
            limit, ', '.join('%s %dus' % (vm['name'], vm['guest_blackout_us']) for vm in over)))
    result['msg'] = 'updated %s -> %s in %s mode' % (plan['old_revision'], result['new_revision'],
                                                     module.params['mode'])


def main():
    spec = dict(
        src=dict(type='path'),
        image=dict(type='path'),
        mode=dict(type='str', choices=['strict', 'fast'], default='strict'),
        park_deadline=dict(type='str'),
        max_guest_blackout=dict(type='str'),
        agent_timeout=dict(type='str'),
        ignore_minrev=dict(type='bool', default=False),
        guests=dict(type='list', elements='str', default=[]),
        request_id=dict(type='str'),
    )
    spec.update(CONNECTION_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_one_of=[('src', 'image')],
                           mutually_exclusive=[('src', 'image')])
    params = module.params
    if params['src'] is not None:
        module.fail_json(msg='src is copied by the ucode.fleet.ucode_update action; '
                             'call the module by its full name, or give image')
    # Absolute, so that ucodectl never reads a file name as an option.
    image = os.path.abspath(params['image'])
    if not os.path.isfile(image):
        module.fail_json(msg='image %s: no such file on this host' % image)
    try:
        durations = dict((name, parse_duration_us(params[name], name))
                         for name in ('park_deadline', 'max_guest_blackout', 'agent_timeout'))
    except ValueError as e:
        module.fail_json(msg=str(e))

    ctl = Ucodectl(module)
    result = dict(changed=False, mode=params['mode'])
    try:
        host = host_facts(ctl.describe(), [])
        result['host'] = dict(hostname=host['hostname'], signature=host['signature'],
                              platform_id=host['platform_id'])
        plan = plan_update(ctl.inspect(image), host, params['ignore_minrev'])
        result.update(plan=plan['plan'], old_revision=plan['old_revision'],
                      new_revision=plan['new_revision'], msg=plan['msg'])
        if plan['plan'] != PLAN_UPDATE:
            module.exit_json(**result)
        if module.check_mode:
            result['changed'] = True
            module.exit_json(**result)
        run_update(module, ctl, image, plan, durations, result)
    except (UcodectlError, PlanError) as e:
        fail(module, result, str(e))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
