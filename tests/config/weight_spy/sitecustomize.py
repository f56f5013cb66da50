"""Loaded at interpreter start-up by the bad-config battery (PYTHONPATH): records every weight file opened.

safetensors' ``safe_open`` is what diffusers, transformers, accelerate and ``safetensors.torch.load_file`` read weights
through; patching it here, before any of them imports it, makes every weight read land in $LCM_EXP_WEIGHT_SPY.
$LCM_EXP_HIDE_PACKAGES (comma-separated) makes those packages unimportable, as on a machine without them.
"""

import os
import sys

import safetensors

_log = os.environ.get("LCM_EXP_WEIGHT_SPY")
_open = safetensors.safe_open


def _spy(filename, *args, **kwargs):
    if _log:
        with open(_log, "a") as f:
            f.write(f"{filename}\n")
    return _open(filename, *args, **kwargs)


safetensors.safe_open = _spy
for _name in filter(None, os.environ.get("LCM_EXP_HIDE_PACKAGES", "").split(",")):
    sys.modules[_name] = None  # import raises ImportError, importlib.util.find_spec returns None
