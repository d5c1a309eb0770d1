"""The zoo: importing this package registers every family (one module per family)."""

from edgecnn.models import mobilenet  # noqa: F401
