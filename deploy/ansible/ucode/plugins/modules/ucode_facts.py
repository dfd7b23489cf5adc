#!/usr/bin/python
# ucode_facts: this host's CPU and guests as its ucoded describes them.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ucode_facts
short_description: Describe a KVM host's CPU, microcode revision and guests through its ucoded
description:
  - Sets C(ansible_facts.ucode) from C(ucodectl describe --json) and C(ucodectl guests --json).
  - Never changes anything; runs the same in check mode.
options: {}
extends_documentation_fragment: ucode.fleet.ucoded
'''

EXAMPLES = r'''
- name: What runs here
  ucode.fleet.ucode_facts:
- name: Group hosts by CPU signature
  ansible.builtin.group_by:
    key: "ucode_sig_{{ ansible_facts.ucode.signature }}"
'''

RETURN = r'''
ansible_facts:
  description: C(ucode), a dict.
  returned: always
  type: complex
  contains:
    ucode:
      description:
        - C(hostname), C(backend) (C(emulated) or C(linux)), C(signature) (CPUID(1).EAX, hex),
          C(platform_id) (MSR 0x17 bits 52:50), C(revision) (the oldest online CPU's, hex),
          C(revisions) (every distinct online revision; more than one means a host left
          half-updated), C(cpus), C(cpus_online), C(staging_supported), and C(guests), per
          guest C(name), C(kind), C(vcpus), C(state) and C(view) (C(updatable) or
          C(stale until restart)).
      type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ucode.fleet.plugins.module_utils.ucodectl import (
    CONNECTION_ARGS, Ucodectl, UcodectlError, host_facts)


def main():
    module = AnsibleModule(argument_spec=dict(CONNECTION_ARGS), supports_check_mode=True)
    ctl = Ucodectl(module)
    try:
        facts = host_facts(ctl.describe(), ctl.guests())
    except UcodectlError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, ansible_facts=dict(ucode=facts))


if __name__ == '__main__':
    main()
