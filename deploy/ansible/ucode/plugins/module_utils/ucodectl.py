# Runs `ucodectl --server unix:SOCKET ... --json` on a managed host and reads its answers.
#
# ucodectl is the one client of ucoded's API (proto/ucode/v1/ucoded.proto): the modules
# never speak gRPC themselves, so the API has one source of truth. Everything ucodectl
# prints is still checked before use: a missing field is an error naming the field.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

DEFAULT_UCODECTL = '/usr/local/bin/ucodectl'
DEFAULT_SOCKET = '/run/ucoded/ucoded.sock'

# Options both modules take.
CONNECTION_ARGS = dict(
    ucodectl=dict(type='path', default=DEFAULT_UCODECTL),
    socket=dict(type='path', default=DEFAULT_SOCKET),
)

_DURATION = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*$')
_UNIT_US = {'us': 1, 'ms': 1000, 's': 1000000}


class UcodectlError(Exception):
    """ucodectl failed: the message is its own (the daemon's) error text; `stderr` all it
    printed there (e.g. the operation it had started before a watch broke)."""

    def __init__(self, message, stderr=''):
        super(UcodectlError, self).__init__(message)
        self.stderr = stderr or ''


def parse_duration_us(text, option):
    """'250us', '20ms', '3s' -> microseconds; None when unset."""
    if text is None or text == '':
        return None
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError('%s: %r is not a duration like 500us, 20ms or 3s' % (option, text))
    return int(round(float(m.group(1)) * _UNIT_US[m.group(2)]))


def hex_value(value):
    return None if value is None else '0x%x' % value


class Ucodectl(object):
    """One managed host's ucoded, reached through its ucodectl."""

    def __init__(self, module):
        self._module = module
        self.binary = module.params['ucodectl']
        self.socket = module.params['socket']
        if not os.access(self.binary, os.X_OK):
            module.fail_json(msg='ucodectl not found or not executable at %s (option ucodectl)'
                             % self.binary)

    def run_json(self, *args):
        """Runs one ucodectl command with --json; returns the parsed object.
        Raises UcodectlError with ucodectl's own stderr when it fails."""
        rc, out, err = self.run_raw(*(list(args) + ['--json']))
        parsed = _parse_json_object(out)
        if rc != 0 and parsed is None:
            raise UcodectlError(_error_text(err, rc, args[0]), err)
        if parsed is None:
            raise UcodectlError('ucodectl %s printed no JSON object: %r' % (args[0], out[:200]))
        return rc, parsed, err

    def run_raw(self, *args):
        cmd = [self.binary, '--server', 'unix:' + self.socket] + list(args)
        return self._module.run_command(cmd, check_rc=False)

    def describe(self):
        return self.run_json('describe')[1]

    def guests(self):
        return self.run_json('guests')[1].get('guests', [])

    def inspect(self, image_path):
        return self.run_json('inspect', image_path)[1]


def _parse_json_object(text):
    text = (text or '').strip()
    if not text.startswith('{'):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error_text(stderr, rc, command):
    lines = [l for l in (stderr or '').splitlines() if l.strip()]
    # ucodectl names the call and the daemon's status: "ucodectl: ApplyUpdate: ABORTED: ...".
    errors = [l for l in lines if l.startswith('ucodectl')]
    text = '; '.join(errors or lines[-3:])
    return text or 'ucodectl %s exited %d with no message' % (command, rc)


def host_facts(describe, guests):
    """The host as ucoded describes it (proto3 JSON omits zero fields: default them)."""
    cpus = describe.get('cpus', [])
    online = [c for c in cpus if c.get('online', False)]
    revisions = sorted(set(c.get('revision', 0) for c in online))
    signature = describe.get('signature', 0)
    return dict(
        hostname=describe.get('hostname', ''),
        backend=describe.get('platform_backend', ''),
        signature=hex_value(signature),
        platform_id=describe.get('platform_id', 0),
        # The oldest online CPU decides, as ucoded's InspectImage does: a CPU left behind
        # still needs the update.
        revision=hex_value(revisions[0]) if revisions else None,
        revisions=[hex_value(r) for r in revisions],
        cpus=len(cpus),
        cpus_online=len(online),
        staging_supported=describe.get('staging_supported', False),
        guests=[dict(name=g.get('name', ''), kind=g.get('kind', ''), vcpus=g.get('vcpus', 0),
                     state=g.get('state', ''),
                     view='updatable' if g.get('guest_view_updatable', False)
                     else 'stale until restart')
                for g in guests],
    )


# Plans, from ucoded's own selection verdicts (InspectImageResponse.images[].verdict).
PLAN_UPDATE = 'update'    # an image is selected: the host would be updated
PLAN_CURRENT = 'current'  # an image fits, and the host already runs its revision or newer
PLAN_NO_FIT = 'no_fit'    # no image in the file is for this CPU


class PlanError(Exception):
    """The image cannot be applied here and the host is not up to date either."""


def plan_update(inspect, host, ignore_minrev):
    """What applying the inspected file would do on this host: a dict with plan, msg and
    the target revision. Raises PlanError for a file that is broken or unsafe here."""
    images = inspect.get('images', [])
    reasons = inspect.get('selection_reasons', [])
    if not images:
        raise PlanError('the file holds no microcode image')
    invalid = ['image %d at offset %s: %s' % (i, im.get('offset', 0), im.get('error', '?'))
               for i, im in enumerate(images) if not im.get('valid', False)]
    if invalid:
        raise PlanError('invalid image file: ' + '; '.join(invalid))
    if not host.get('revision'):
        raise PlanError('; '.join(reasons) or 'ucoded reports no online CPU')
    # Every valid image carries ucoded's verdict once it knows the CPU; without them (CPU
    # unknown, or a ucoded older than SelectionVerdict) "up to date" and "not for this
    # CPU" cannot be told apart, and guessing could report a stale host as done.
    if any('verdict' not in im for im in images):
        raise PlanError('ucoded gave no selection verdict per image (CPU unknown, or ucoded '
                        'older than this collection): ' + '; '.join(reasons))

    def verdict(name):
        return [im for im in images if im.get('verdict') == 'SELECTION_VERDICT_' + name]

    selected, unsafe, current = verdict('SELECTED'), verdict('MIN_REV_UNSAFE'), verdict('NOT_NEWER')
    if ignore_minrev:
        selected = selected + unsafe
    base = dict(old_revision=host['revision'], selection_reasons=reasons)
    if selected:
        target = max(selected, key=lambda im: _signed(im.get('revision', 0)))
        return dict(base, plan=PLAN_UPDATE, new_revision=hex_value(target.get('revision', 0)),
                    msg='would update %s -> %s' % (host['revision'],
                                                  hex_value(target.get('revision', 0))))
    if unsafe:
        raise PlanError('the image fits but may not be late-loaded here: ' + '; '.join(reasons))
    if current:
        newest = max(_signed(im.get('revision', 0)) for im in current) & 0xffffffff
        return dict(base, plan=PLAN_CURRENT, new_revision=host['revision'],
                    msg='already runs %s (image revision %s)' % (host['revision'],
                                                                hex_value(newest)))
    return dict(base, plan=PLAN_NO_FIT, new_revision=host['revision'],
                msg='no image in the file fits signature %s platform id %d: %s'
                % (host['signature'], host['platform_id'], '; '.join(reasons)))


def _signed(revision):
    """Intel revisions compare signed (debug revisions are negative; selection.cc IsNewer)."""
    return revision - (1 << 32) if revision & 0x80000000 else revision
