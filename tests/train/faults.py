"""``python tests/train/faults.py <fault> <launch.py args...>``: launch.py with one fault injected, as a user's
process would meet it.

Faults:
  slow_teacher  the teacher takes 60 s to load (a window to signal the run before its first step)
  full_disk     the disk fills while checkpoint-2 is written: that save fails with ENOSPC, and every later write
                fails too for as long as the partial checkpoint holds the space (as on a real full disk)
"""

from __future__ import annotations

import errno
import pathlib
import runpy
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's lcm_exp, whatever is installed


def slow_teacher() -> None:
    import lcm_exp.models.registry as registry

    real = registry.get_family

    def slow(name):
        time.sleep(60)
        return real(name)

    registry.get_family = slow
    import lcm_exp.train.build as build

    build.get_family = slow


def full_disk() -> None:
    import safetensors.torch as st  # checkpoint.py imports save_file from here at save time

    real_save = st.save_file

    def save_file(tensors, path, *args, **kwargs):
        path = pathlib.Path(path)
        if path.parent.name == ".tmp-checkpoint-2":
            path.write_bytes(b"\0" * 1024)  # the part that fitted
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(tensors, path, *args, **kwargs)

    st.save_file = save_file
    real_write = pathlib.Path.write_text

    def write_text(self, *args, **kwargs):
        run_dir = next((p for p in self.parents if (p / "checkpoints").is_dir()), None)
        if run_dir is not None and (run_dir / "checkpoints" / ".tmp-checkpoint-2").exists():
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *args, **kwargs)

    pathlib.Path.write_text = write_text


if __name__ == "__main__":
    fault, *args = sys.argv[1:]
    {"slow_teacher": slow_teacher, "full_disk": full_disk}[fault]()
    sys.argv = [str(ROOT / "launch.py"), *args]
    runpy.run_path(str(ROOT / "launch.py"), run_name="__main__")
