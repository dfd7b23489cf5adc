#!/usr/bin/env python3
"""The ucode.fleet Ansible collection against real ucoded instances.

Eight ucoded daemons on private sockets, each with its own journal and emulated host
(two with a real KVM fleet), play a fleet: hosts the image fits, one already up to date,
two it does not fit. ansible-playbook runs the collection's rollout.yml over them (local
connection, one socket per host) in check mode, for real, again, and then over a fresh
fleet whose canary fails. Every assertion reads the daemons' own state or the playbook's
JSON fleet report, never a clock.

Usage: rollout_test.py --ucoded P --ucodectl P --galaxy-yml P
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

IMAGE_REVISION = 0x2b000650  # 06-8f-08 pf 0x87 in the 20251111 release (min_rev 0x2b000161)
SMALL_HOST = 'packages=1,cores=2,threads=1'

# name, emulated host (--host KEY=VALUE,...), --vmm_fleet, expected plan. Inventory order
# is wave order: the first fitting host is the canary.
FLEET = [
    ('canary', 'platform_id=7,revision=0x2b000500', '2x1', 'update'),
    ('sapphire-a', SMALL_HOST + ',platform_id=1,revision=0x2b000600', '1x1', 'update'),
    ('uptodate', SMALL_HOST + ',platform_id=7,revision=0x2b000650', 'none', 'current'),
    ('sapphire-b', SMALL_HOST + ',platform_id=0,revision=0x2b000500', 'none', 'update'),
    ('skylake', SMALL_HOST + ',signature=0x50654,platform_id=0,revision=0x2007006', 'none',
     'no_fit'),
    ('sapphire-c', SMALL_HOST + ',platform_id=2,revision=0x2b000610', 'none', 'update'),
    ('other-pf', SMALL_HOST + ',platform_id=3,revision=0x2b000500', 'none', 'no_fit'),
    ('sapphire-d', SMALL_HOST + ',platform_id=7,revision=0x2b000600', 'none', 'update'),
]


def fail(message):
    print('FAIL: ' + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


class Daemon(object):
    """One ucoded on a socket of its own, in a fresh private directory."""

    started = []  # every one, so that a failing test still stops them all

    def __init__(self, args, root, name, flags):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=name + '.', dir=root)  # mode 0700
        self.socket = os.path.join(self.dir, 'ucoded.sock')
        self.ucodectl = args.ucodectl
        self.argv = [args.ucoded, '--socket=' + self.socket,
                     '--journal=' + os.path.join(self.dir, 'journal.sqlite'),
                     '--allow_uids=%d' % os.getuid()] + flags
        self.start()
        Daemon.started.append(self)

    def start(self):
        self.log = open(os.path.join(self.dir, 'ucoded.log'), 'a')
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)

    def ctl(self, *words):
        return subprocess.run([self.ucodectl, '--server', 'unix:' + self.socket] + list(words),
                              capture_output=True, text=True)

    def wait_ready(self):
        while True:  # bounded by the test's own timeout; no clock is asserted
            if self.proc.poll() is not None:
                fail('%s: ucoded exited %d: %s' % (self.name, self.proc.returncode,
                                                   open(self.log.name).read()[-2000:]))
            if self.ctl('describe', '--json').returncode == 0:
                return
            time.sleep(0.1)

    def revisions(self):
        r = self.ctl('describe', '--json')
        check(r.returncode == 0, '%s: describe: %s' % (self.name, r.stderr))
        return sorted(set(c.get('revision', 0) for c in json.loads(r.stdout).get('cpus', [])))

    def operations(self):
        r = self.ctl('list', '--all')
        check(r.returncode == 0, '%s: list: %s' % (self.name, r.stderr))
        return [l.split()[0] for l in r.stdout.splitlines() if l.startswith('operations/')]

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()  # closing twice is harmless


class Fleet(object):
    @staticmethod
    def of(daemons):
        fleet = Fleet.__new__(Fleet)
        fleet.daemons = daemons
        return fleet

    def __init__(self, args, root, failing_canary=False):
        self.daemons = []
        for i, (name, host, vmm, plan) in enumerate(FLEET):
            if failing_canary and i == 0:
                host += ',failing_cpus=1'
            self.daemons.append(Daemon(args, root, name, ['--host=' + host, '--vmm_fleet=' + vmm]))
        for d in self.daemons:
            d.wait_ready()
        self.before = dict((d.name, d.revisions()) for d in self.daemons)

    def by_plan(self, plan):
        return [d for d, spec in zip(self.daemons, FLEET) if spec[3] == plan]

    def stop(self):
        for d in self.daemons:
            d.stop()


class Ansible(object):
    def __init__(self, args, root, release_file):
        self.root = root
        self.image = release_file
        self.ucodectl = args.ucodectl
        self.env = dict(os.environ, HOME=root, ANSIBLE_COLLECTIONS_PATH=os.path.join(root, 'collections'),
                        ANSIBLE_LOCAL_TEMP=os.path.join(root, 'ansible-local'),
                        ANSIBLE_REMOTE_TEMP=os.path.join(root, 'ansible-remote'),
                        ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
                        ANSIBLE_CONFIG=os.path.join(root, 'ansible.cfg'))
        open(self.env['ANSIBLE_CONFIG'], 'w').close()
        self.install(os.path.dirname(args.galaxy_yml))
        self.runs = 0

    def install(self, source):
        """Builds the collection as an operator would, and installs the tarball."""
        copy = os.path.join(self.root, 'collection-src')
        shutil.copytree(source, copy, symlinks=False)  # runfiles are symlinks
        for cmd in (['ansible-galaxy', 'collection', 'build', copy, '--output-path', self.root],
                    ['ansible-galaxy', 'collection', 'install', '--offline', '-p',
                     self.env['ANSIBLE_COLLECTIONS_PATH'],
                     os.path.join(self.root, 'ucode-fleet-1.0.0.tar.gz')]):
            r = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
            check(r.returncode == 0, '%s: %s%s' % (' '.join(cmd[:3]), r.stdout, r.stderr))

    def inventory(self, fleet):
        path = os.path.join(self.root, 'inventory-%d.ini' % self.runs)
        with open(path, 'w') as f:
            f.write('[hypervisors]\n')
            for d in fleet.daemons:
                f.write('%s ucode_socket=%s\n' % (d.name, d.socket))
            f.write('[hypervisors:vars]\nansible_connection=local\n'
                    'ansible_python_interpreter=%s\nucode_ucodectl=%s\n'
                    % (sys.executable, self.ucodectl))
        return path

    def rollout(self, fleet, *extra):
        """Runs ucode.fleet.rollout; returns (exit status, output, fleet report, seconds)."""
        self.runs += 1
        report = os.path.join(self.root, 'report-%d.json' % self.runs)
        cmd = ['ansible-playbook', '-i', self.inventory(fleet), 'ucode.fleet.rollout',
               '-e', 'ucode_image=' + self.image, '-e', 'ucode_report_json=' + report,
               '-e', 'ucode_max_guest_blackout=10s'] + list(extra)
        started = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=self.root)
        seconds = time.monotonic() - started
        output = r.stdout + r.stderr
        with open(os.path.join(self.root, 'run-%d.log' % self.runs), 'w') as f:
            f.write(output)
        check(os.path.exists(report), 'run %d wrote no fleet report (exit %d):\n%s'
              % (self.runs, r.returncode, output[-6000:]))
        return r.returncode, output, json.load(open(report)), seconds


    def module(self, fleet, host, check_mode=False, background=False, **options):
        """Runs ucode_update alone (ad hoc) on one host; returns (status word, result), or
        a function that waits for them when `background`."""
        daemon = [d for d in fleet.daemons if d.name == host][0]
        options.update(src=self.image, socket=daemon.socket, ucodectl=self.ucodectl)
        cmd = ['ansible', '-i', self.inventory(fleet), host, '-m', 'ucode.fleet.ucode_update',
               '-a', json.dumps(options)] + (['--check'] if check_mode else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env, cwd=self.root)

        def result():
            out, err = proc.communicate()
            m = re.search(r'^%s \| (\S+)! => (\{.*\})\s*$' % re.escape(host), out, re.M | re.S)
            check(m is not None, 'ad hoc ucode_update printed no result:\n%s%s' % (out, err))
            return m.group(1), json.loads(m.group(2))
        return result if background else result()


def recap(output):
    """PLAY RECAP counters per host."""
    rows = {}
    for m in re.finditer(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+'
                         r'failed=(\d+)\s+skipped=(\d+)\s+rescued=(\d+)', output, re.M):
        rows[m.group(1)] = dict(ok=int(m.group(2)), changed=int(m.group(3)),
                                unreachable=int(m.group(4)), failed=int(m.group(5)),
                                rescued=int(m.group(7)))
    return rows


def statuses(report):
    return dict((h['host'], h) for h in report['hosts'])


def assert_untouched(fleet, daemons, what):
    for d in daemons:
        check(d.revisions() == fleet.before[d.name],
              '%s: %s changed the revision: %s -> %s' % (d.name, what,
                                                         fleet.before[d.name], d.revisions()))
        check(d.operations() == [], '%s: %s started operations %s' % (d.name, what, d.operations()))


def test_bad_option(ansible, fleet):
    """An option the module refuses fails the pre-flight everywhere: nothing is touched."""
    rc, out, report, _ = ansible.rollout(fleet, '-e', 'ucode_max_guest_blackout=20')
    check(rc != 0, 'a bad option did not fail the playbook:\n' + out[-4000:])
    for h in report['hosts']:
        check(h['status'] == 'FAILED' and 'pre-flight' in h['detail'] and
              'is not a duration' in h['detail'], str(h))
    assert_untouched(fleet, fleet.daemons, 'a refused option')
    print('bad option: pre-flight failed on every host, nothing touched')


def test_check_mode(ansible, fleet):
    rc, out, report, _ = ansible.rollout(fleet, '--check')
    check(rc == 0, 'check run exited %d:\n%s' % (rc, out[-6000:]))
    assert_untouched(fleet, fleet.daemons, 'check mode')
    s = statuses(report)
    for d in fleet.by_plan('update'):
        check(s[d.name]['status'] == 'would update', 'check: %s' % s[d.name])
        check(s[d.name]['new_revision'] == '0x%x' % IMAGE_REVISION, 'check: %s' % s[d.name])
    print('check mode: nothing changed on %d hosts' % len(fleet.daemons))


def test_rollout(ansible, fleet):
    rc, out, report, seconds = ansible.rollout(fleet)
    check(rc == 0, 'rollout exited %d:\n%s' % (rc, out[-6000:]))
    s, counts = statuses(report), recap(out)
    for d in fleet.by_plan('update'):
        check(d.revisions() == [IMAGE_REVISION], '%s ends on %s' % (d.name, d.revisions()))
        check(s[d.name]['status'] == 'updated' and counts[d.name]['changed'] >= 1,
              '%s: %s %s' % (d.name, s[d.name], counts[d.name]))
    for d in fleet.by_plan('current'):
        check(s[d.name]['status'] == 'ok' and 'already runs' in s[d.name]['detail'], str(s[d.name]))
        check(counts[d.name]['changed'] == 0, '%s: %s' % (d.name, counts[d.name]))
    for d in fleet.by_plan('no_fit'):
        check(s[d.name]['status'] == 'skipped', str(s[d.name]))
        check('no image in the file fits' in s[d.name]['detail'], str(s[d.name]))
        check(re.search(r'\[%s\] => .*\n.*skipped: no image in the file fits' % d.name, out),
              'no skip reason printed for %s' % d.name)
        check(counts[d.name]['changed'] == 0, '%s: %s' % (d.name, counts[d.name]))
    assert_untouched(fleet, fleet.by_plan('current') + fleet.by_plan('no_fit'), 'the rollout')
    # Waves over the 5 hosts to update: the canary alone, 5 % and 25 % (one host each),
    # then the rest.
    waves = [w['hosts'] for w in report['waves']]
    names = [d.name for d in fleet.by_plan('update')]
    check(waves == [names[:1], names[1:2], names[2:3], names[3:]], 'waves %s' % waves)
    canary = s['canary']
    check(len(canary['vms']) == 2 and all(vm['guest_blackout_us'] is not None
                                          for vm in canary['vms']), str(canary))
    print('figures (one run, 8 hosts, 5 updated; machine shared with other builds):')
    print('  wall time of the rollout: %.2fs' % seconds)
    for w in report['waves']:
        print('  wave %d: %.2fs  %s' % (w['wave'], w['seconds'], ', '.join(w['hosts'])))
    print('  fleet report:')
    for line in report['lines']:
        print('    ' + line)
    return dict((d.name, d.operations()) for d in fleet.daemons)


def test_second_run(ansible, fleet, operations):
    rc, out, report, _ = ansible.rollout(fleet)
    check(rc == 0, 'second run exited %d:\n%s' % (rc, out[-6000:]))
    counts = recap(out)
    for d in fleet.daemons:
        check(counts[d.name]['changed'] == 0, 'second run changed %s: %s' % (d.name, counts[d.name]))
        check(d.operations() == operations[d.name], '%s: second run started an operation' % d.name)
    check('skipping: no hosts matched' in out, 'second run had hosts to update:\n' + out[-4000:])
    print('second run: changed=0 on every host, no operation started')


def test_failing_canary(ansible, fleet):
    rc, out, report, _ = ansible.rollout(fleet)
    check(rc != 0, 'a failing canary did not fail the rollout:\n' + out[-6000:])
    canary = fleet.daemons[0]
    ops = canary.operations()
    check(len(ops) == 1, 'canary operations: %s' % ops)
    op = json.loads(canary.ctl('get', ops[0], '--json').stdout)
    check(op['state'] == 'OPERATION_STATE_FAILED', str(op))
    daemon_error = op['error']['message']
    s = statuses(report)
    check(s['canary']['status'] == 'FAILED' and daemon_error in s['canary']['detail'],
          'canary row %s lacks the daemon\'s error %r' % (s['canary'], daemon_error))
    check(daemon_error in out, 'the daemon\'s error is not in the output')
    # Half-updated (its failing CPU kept the old revision): never reported as the new one.
    check(s['canary']['new_revision'] != '0x%x' % IMAGE_REVISION and
          len(s['canary']['revisions_after']) == 2, str(s['canary']))
    check(any(l.startswith('canary') and 'FAILED' in l for l in report['lines']),
          'fleet report lacks the canary line: %s' % report['lines'])
    check(re.search(r'"canary +FAILED ', out), 'the fleet report is not in the output')
    later = fleet.by_plan('update')[1:]
    assert_untouched(fleet, later + fleet.by_plan('current') + fleet.by_plan('no_fit'),
                     'a rollout stopped by its canary')
    for d in later:
        check(s[d.name]['status'] == 'not run', str(s[d.name]))
    check(recap(out)['canary']['failed'] == 1, 'recap: %s' % recap(out).get('canary'))
    print('failing canary: stopped after wave 1; %d later hosts untouched; error: %s'
          % (len(later), daemon_error))


def test_max_guest_blackout(ansible, fleet):
    """A guest that measured more than max_guest_blackout fails the host, after the update."""
    status, result = ansible.module(fleet, 'sapphire-a', max_guest_blackout='1us')
    measured = [vm['guest_blackout_us'] for vm in result.get('vms', [])
                if vm['guest_blackout_us'] is not None]
    check(result.get('operation') and measured, 'no update or no guest figure: %s' % result)
    check(result['new_revision'] == '0x%x' % IMAGE_REVISION and result['changed'], str(result))
    if max(measured) > 1:
        check(status == 'FAILED' and 'over max_guest_blackout 1us' in result['msg'], str(result))
    else:  # a guest that saw nothing is within any bound
        check(status == 'CHANGED', str(result))
    print('max_guest_blackout 1us: %s (%s)' % (status, result['msg']))


def test_min_rev_and_interrupted(args, ansible, root):
    """ucoded's fake runner: a host below the image's min_rev, and an operation that never
    ends (--fake_pause_at) whose daemon dies under the module."""
    daemon = Daemon(args, root, 'fake', ['--runner=fake', '--fake_pause_at=STEP_ACTIVATED'])
    daemon.wait_ready()
    fleet = Fleet.of([daemon])
    status, result = ansible.module(fleet, 'fake', check_mode=True)
    check(status == 'FAILED' and 'may not be late-loaded' in result['msg'], str(result))
    check(daemon.operations() == [], 'check mode started %s' % daemon.operations())
    wait = ansible.module(fleet, 'fake', background=True, ignore_minrev=True)
    while not daemon.operations():  # the operation then holds at STEP_ACTIVATED for good
        time.sleep(0.05)
    operation = daemon.operations()[0]
    daemon.kill()
    status, result = wait()
    check(status == 'FAILED' and result['changed'] and result.get('operation') == operation,
          str(result))
    check('outcome is unknown' in result['msg'] and 'ucodectl: ' in result['msg'], str(result))
    daemon.start()  # the same journal: ucoded reports the operation interrupted
    daemon.wait_ready()
    op = json.loads(daemon.ctl('get', operation, '--json').stdout)
    check(op['state'] == 'OPERATION_STATE_INTERRUPTED', str(op))
    daemon.stop()
    print('min_rev refused in check mode; interrupted operation: %s' % result['msg'])


def find_release_file():
    here = os.path.dirname(os.path.realpath(__file__))  # tests/ansible in the source tree
    workspace = os.path.dirname(os.path.dirname(here))
    release = os.environ.get('UCODE_MICROCODE_RELEASE_DIR', os.path.join(
        workspace, '..', 'shared', 'data', 'intel-microcode-20251111', 'intel-ucode'))
    return workspace, os.path.join(release, '06-8f-08')


def main():
    parser = argparse.ArgumentParser()
    for flag in ('--ucoded', '--ucodectl', '--galaxy-yml'):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    for name in ('ucoded', 'ucodectl', 'galaxy_yml'):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    if not (os.access('/dev/kvm', os.R_OK | os.W_OK)):
        print('SKIP: /dev/kvm unavailable')
        return
    workspace, image = find_release_file()
    if not os.path.isfile(image):
        print('SKIP: release file %s not found' % image)
        return
    if shutil.which('ansible-playbook') is None:
        # The project's own install step (tools/install-deps lists ansible-core).
        subprocess.run([os.path.join(workspace, 'tools', 'install-deps')], check=True)

    root = tempfile.mkdtemp(prefix='ucode-ansible.', dir='/tmp')  # sun_path is short
    try:
        ansible = Ansible(args, root, image)
        fleet = Fleet(args, root)
        test_bad_option(ansible, fleet)
        test_check_mode(ansible, fleet)
        operations = test_rollout(ansible, fleet)
        test_second_run(ansible, fleet, operations)
        fleet.stop()
        fleet = Fleet(args, root, failing_canary=True)
        test_failing_canary(ansible, fleet)
        test_max_guest_blackout(ansible, fleet)
        fleet.stop()
        test_min_rev_and_interrupted(args, ansible, root)
    finally:
        for daemon in Daemon.started:
            daemon.stop()
        logs = os.environ.get('TEST_UNDECLARED_OUTPUTS_DIR')
        if logs:
            for name in os.listdir(root):
                if name.endswith('.log') or name.startswith('report-'):
                    shutil.copy(os.path.join(root, name), logs)
        shutil.rmtree(root, ignore_errors=True)
    print('PASS')


if __name__ == '__main__':
    main()
