import sys

from recwise.cli import main

sys.exit(main())
