# The options every module of the collection takes to reach the host's ucoded.

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  ucodectl:
    description: Path of ucodectl on the managed host.
    type: path
    default: /usr/local/bin/ucodectl
  socket:
    description: ucoded's Unix socket on the managed host.
    type: path
    default: /run/ucoded/ucoded.sock
'''
