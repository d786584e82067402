"""The rules engine's compiled kernel (src/tokenmall/core/_kernel.c), built when a C compiler
and Python's headers are there; optional: without them tokenmall installs and runs the same
rules in Python (core/engine.py), only slower. Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tokenmall.core._kernel",
            ["src/tokenmall/core/_kernel.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
