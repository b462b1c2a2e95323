import sys

from mediafm.cli import main

sys.exit(main())
