# The controller side of ucode_update: copies `src` (an image on the controller) into the
# task's private remote temporary directory (mode 0700, removed after the task), then
# runs the module on it with `image`. Without `src` the module runs as given.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

MODULE = 'ucode.fleet.ucode_update'


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # the connection's own tmpdir is used
        args = dict(self._task.args)
        src = args.pop('src', None)
        try:
            if src is None:
                result.update(self._execute_module(module_name=MODULE, module_args=args,
                                                   task_vars=task_vars))
                return result
            if args.get('image'):
                result.update(failed=True, msg='src and image are mutually exclusive')
                return result
            try:
                local = self._loader.get_real_file(self._find_needle('files', src))
            except AnsibleError as e:
                result.update(failed=True, msg='src %s: %s' % (src, to_text(e)))
                return result
            tmpdir = self._connection._shell.tmpdir
            remote = self._connection._shell.join_path(tmpdir, 'ucode-image')
            self._transfer_file(local, remote)
            self._fixup_perms2((tmpdir, remote))
            args['image'] = remote
            result.update(self._execute_module(module_name=MODULE, module_args=args,
                                               task_vars=task_vars))
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
