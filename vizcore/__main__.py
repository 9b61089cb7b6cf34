import sys

from vizcore.app.cli import main

sys.exit(main())
