"""The optional native OTLP JSON reader (native/otlp_simdjson.cpp, against the system's
simdjson: Debian's libsimdjson-dev, Homebrew's or conda-forge's simdjson). Everything else is
in pyproject.toml.

The extension is optional: without a C++ compiler or simdjson its build fails with a warning,
`pip install` still succeeds, and the polars path reads JSON (`sessions --version` says which).
It is compiled for the machine it is built on (-march=native): On-Demand simdjson picks its
SIMD kernels when compiled, and a generic build would run its slowest one. Environment:
SESSIONS_NATIVE_CFLAGS replaces that flag; SESSIONS_NATIVE_SANITIZE=1 builds with
AddressSanitizer and UBSan (CI runs the fuzz and bad-input tests so).
"""

import os
import shlex

from setuptools import Extension, setup

flags = [
    "-std=c++17",
    "-O3",
    *shlex.split(os.environ.get("SESSIONS_NATIVE_CFLAGS", "-march=native")),
]
link = []
if os.environ.get("SESSIONS_NATIVE_SANITIZE") == "1":
    sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    flags += [*sanitizers, "-O1", "-g", "-fno-omit-frame-pointer"]
    link += sanitizers

setup(
    ext_modules=[
        Extension(
            "sessions_cli.read._otlp_simdjson",
            sources=["native/otlp_simdjson.cpp"],
            depends=["native/rows.h"],
            libraries=["simdjson"],
            extra_compile_args=flags,
            extra_link_args=link,
            language="c++",
            optional=True,
        )
    ]
)
