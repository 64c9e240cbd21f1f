"""`python -m terminal_client URL [--token T]`: chat in this terminal."""

import sys

from terminal_client.cli import main

sys.exit(main())
