"""timeraw_: a fresh interpreter imports fastoptim and takes its first step."""

FIRST_STEP = """
import numpy as np
import fastoptim
params = fastoptim.flatten({"W1": np.ones(1000, np.float32)})
opt = fastoptim.Adam(params)
opt.step(params.zeros_like())
"""


def timeraw_import_and_first_step_warm_cache():
    # asv runs this several times: after the first, the on-disk cache is warm
    return FIRST_STEP


def timeraw_import_and_first_step_cold():
    # no cache: the kernel is compiled in this process
    return "import os\nos.environ['FASTOPTIM_CACHE'] = '0'\n" + FIRST_STEP
