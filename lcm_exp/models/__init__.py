"""Teacher model families (SD1.5, SDXL) behind one interface, plus tiny offline teachers.

Importing this package is cheap: the families (and diffusers) load when a family is looked up.
"""

from lcm_exp.models.registry import FAMILIES, FAMILY_NAMES, get_family
from lcm_exp.models.teacher_files import MissingComponentError, SchedulerInfo, read_scheduler_config

__all__ = ["FAMILIES", "FAMILY_NAMES", "MissingComponentError", "SchedulerInfo", "get_family", "read_scheduler_config"]
