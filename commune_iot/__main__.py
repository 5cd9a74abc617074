import sys

from commune_iot.cli import main

sys.exit(main())
