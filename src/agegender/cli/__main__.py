"""`python -m agegender.cli ...` (e.g. under torchrun)."""

import sys

from agegender.cli import main

sys.exit(main())
