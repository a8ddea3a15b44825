import sys

from deploy.local.launcher import main

sys.exit(main())
