"""What pyproject.toml cannot say without setuptools' experimental table: the C
extension (the supervisor's hot path, see its head), which needs a C compiler and
Python's headers to build; and, built next to it, the table of syscall numbers asked
of libseccomp (sandbox/syscalls.py), which needs libseccomp."""

import importlib.util
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _syscalls():  # sandbox/syscalls.py, by path: the package is not built yet
    spec = importlib.util.spec_from_file_location("syscalls", os.path.join("sandbox", "syscalls.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithSyscalls(build_ext):
    """build_ext, which also writes _syscalls.py where the extension goes (the source
    tree for an editable install, the build directory for a wheel)."""

    def run(self):
        super().run()
        syscalls = _syscalls()
        with open(self._table_path(syscalls), "w") as table:
            table.write(syscalls.table_source(syscalls.ask()))

    def get_outputs(self):
        return [*super().get_outputs(), self._table_path(_syscalls())]

    def _table_path(self, syscalls):
        return os.path.join(os.path.dirname(self.get_ext_fullpath("sandbox._fastpath")), syscalls.MODULE)


setup(ext_modules=[Extension("sandbox._fastpath", ["sandbox/_fastpath.c"], extra_compile_args=["-Wall"])],
      cmdclass={"build_ext": BuildWithSyscalls})
