"""Built-in plugins of medssr_nemo, installed as the package ``medssr_nemo_plugins``.

They register exactly as a third party's would: importing a module runs its ``@register``
decorators. Each sub-package holds one kind.
"""

import importlib
import pkgutil

for _module in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
    importlib.import_module(_module.name)
