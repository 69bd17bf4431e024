import sys

from callback_api.cli import main

sys.exit(main())
