# fleet_report: one line per host (and per wave) from what the rollout playbook recorded:
# ansible_facts.ucode (ucode_facts), ucode_plan (pre-flight, check mode), ucode_result
# (the update) and ucode_wave_* (set by each wave's first and last task).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_report
short_description: The fleet report of a ucode rollout
description:
  - Takes the inventory's host names and C(hostvars); returns C(lines) (a table, one line per
    host, then one per wave), C(hosts) and C(waves) (the same as data).
positional: hostvars
options:
  _input:
    description: Host names, in report order (e.g. C(groups['all'])).
    type: list
    required: true
  hostvars:
    description: The play's C(hostvars).
    type: dict
    required: true
'''


def _ms(us):
    return '-' if us is None else '%.2fms' % (us / 1000.0)


def _get(mapping, key):
    try:
        return mapping[key] if key in mapping else None
    except Exception:  # an undefined or unrenderable variable reads as absent
        return None


def _host_row(name, hv):
    facts = _get(_get(hv, 'ansible_facts') or {}, 'ucode') or {}
    plan = _get(hv, 'ucode_plan') or {}
    result = _get(hv, 'ucode_result') or {}
    row = dict(host=name, signature=facts.get('signature', '?'),
               platform_id=facts.get('platform_id', '?'), status='', detail='',
               old_revision=facts.get('revision'), new_revision=facts.get('revision'),
               mode='', vms=[])
    if result and not result.get('skipped'):
        row.update(mode=result.get('mode', ''), vms=result.get('vms') or [],
                   old_revision=result.get('old_revision', row['old_revision']),
                   new_revision=result.get('new_revision', row['new_revision']))
        if result.get('failed'):
            row.update(status='FAILED', detail=result.get('msg', ''),
                       revisions_after=result.get('revisions_after') or [])
        elif result.get('operation'):
            row.update(status='updated', detail=result.get('operation'))
        elif result.get('changed'):
            row.update(status='would update', detail=result.get('msg', ''))
        else:
            row.update(status='ok', detail=result.get('msg', ''))
    elif _get(hv, 'ucode_preflight_failed') is not None:
        row.update(status='FAILED', detail='pre-flight: %s' % _get(hv, 'ucode_preflight_failed'))
    elif plan.get('plan') == 'no_fit':
        row.update(status='skipped', detail=plan.get('msg', ''))
    elif plan.get('plan') == 'current':
        row.update(status='ok', detail=plan.get('msg', ''))
    elif plan.get('plan') == 'update':
        row.update(status='not run', detail='the rollout stopped before this host\'s wave',
                   new_revision=plan.get('new_revision'))
    else:
        row.update(status='unknown', detail='no facts: host unreachable or pre-flight failed')
    return row


def _waves(names, hostvars):
    waves = {}
    for name in names:
        hv = hostvars[name]
        members = _get(hv, 'ucode_wave_hosts')
        started = _get(hv, 'ucode_wave_started')
        if not members or started is None:
            continue
        result = _get(hv, 'ucode_result') or {}
        ends = [float(started)]
        for end in (_get(hv, 'ucode_wave_finished'), result.get('finished')):
            if end is not None:
                ends.append(float(end))
        wave = waves.setdefault(tuple(members), dict(hosts=list(members), started=float(started),
                                                     finished=max(ends)))
        wave['started'] = min(wave['started'], float(started))
        wave['finished'] = max(wave['finished'], max(ends))
    ordered = sorted(waves.values(), key=lambda w: w['started'])
    for i, wave in enumerate(ordered):
        wave.update(wave=i + 1, seconds=round(wave['finished'] - wave['started'], 3))
    return ordered


def fleet_report(names, hostvars):
    rows = [_host_row(name, hostvars[name]) for name in names]
    table = [('host', 'status', 'cpu', 'revision', 'mode', 'per VM: time parked/guest blackout',
              'detail')]
    for r in rows:
        revision = r['old_revision'] or '?'
        if r['status'] in ('updated', 'would update', 'not run') and \
                r['new_revision'] and r['new_revision'] != r['old_revision']:
            revision += ' -> %s' % r['new_revision']
        after = r.get('revisions_after') or []
        if r['status'] == 'FAILED' and after and after != [r['old_revision']]:
            revision += ' -> now %s' % '/'.join(after)  # several: a half-updated host
        vms = ', '.join('%s %s/%s' % (vm.get('name', '?'), _ms(vm.get('park_time_us')),
                                       _ms(vm.get('guest_blackout_us'))) for vm in r['vms'])
        table.append((r['host'], r['status'], '%s pf %s' % (r['signature'], r['platform_id']),
                      revision, r['mode'] or '-', vms or '-', r['detail']))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(table[0]) - 1)]
    lines = ['  '.join(str(cell).ljust(w) for cell, w in zip(line, widths)) + '  ' + line[-1]
             for line in table]
    waves = _waves(names, hostvars)
    for w in waves:
        lines.append('wave %d: %d host(s) in %.2fs: %s' % (w['wave'], len(w['hosts']),
                                                          w['seconds'], ', '.join(w['hosts'])))
    return dict(lines=[' '.join(l.split('\n')).rstrip() for l in lines], hosts=rows, waves=waves)


class FilterModule(object):
    def filters(self):
        return {'fleet_report': fleet_report}
