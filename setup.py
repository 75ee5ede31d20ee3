"""The one thing pyproject.toml cannot say without setuptools' experimental table: the C
extension (the supervisor's hot path, see its head), which needs a C compiler and
Python's headers to build."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sandbox._fastpath", ["sandbox/_fastpath.c"], extra_compile_args=["-Wall"])])
