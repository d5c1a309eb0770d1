"""tegrastats lines -> power, temperature and clock figures: the one parser is
edgecnn/remote/tegrastats.py (`edgecnn bench --remote` samples the board with it too). It is
loaded here by its path in this checkout, not imported as part of edgecnn: the Nano's Python
3.6 cannot import edgecnn, and deploy/jetson and deploy/nano keep `import tegrastats`.
"""

import importlib.util
import os

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edgecnn",
                     "remote", "tegrastats.py")
_spec = importlib.util.spec_from_file_location("edgecnn_tegrastats", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

INPUT_RAILS = _module.INPUT_RAILS
parse_line = _module.parse_line
input_power_w = _module.input_power_w
summarize = _module.summarize
