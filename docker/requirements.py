"""Print the project's dependencies and build requirements from pyproject.toml, one a line, for the
image's dependency layer (installed before the code is copied, so a code change reuses it).

Fails when torch is already installed (the image installs it first, from the wheel source chosen by
its build arguments) at a version other than pyproject's pin: pip would otherwise replace it with a
download from PyPI (a multi-GB CUDA build in the CPU image).
"""

import importlib.metadata
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)
requirements = project["project"]["dependencies"] + project["build-system"]["requires"]
for requirement in requirements:
    pin = re.fullmatch(r"torch\s*==\s*([^\s;]+)", requirement)
    if pin:
        try:
            installed = importlib.metadata.version("torch").split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is not None and installed != pin.group(1):
            sys.exit(f"pyproject.toml pins torch=={pin.group(1)} but torch {installed} was installed from the "
                     f"TORCH_* build arguments: pass --build-arg TORCH_VERSION={pin.group(1)}")
print("\n".join(requirements))
