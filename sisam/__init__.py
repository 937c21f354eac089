"""sisam: which items of an import declaration are probably wrong, how probably, and why."""

import logging

__version__ = "0.1.0"

logging.getLogger("sisam").addHandler(logging.NullHandler())
