"""`python -m flows.cli`, as the `roberta` console script."""
import sys

from flows.cli import main

sys.exit(main())
