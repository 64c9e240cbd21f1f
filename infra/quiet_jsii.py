"""Silence jsii's Node.js version banners before aws_cdk is imported.

jsii prints a large banner on every process when Node.js is past end-of-life; it drowns
the CLI's and pytest's output. The end-of-life switch lists the major versions to keep
quiet about; the others only need to be set.
"""

import os

_ALL_NODE_MAJORS = ",".join(str(major) for major in range(10, 40))


def silence_node_banners() -> None:
    """Set jsii's switches unless the caller already chose values."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", _ALL_NODE_MAJORS)
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
