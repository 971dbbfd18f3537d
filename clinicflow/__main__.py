import sys

from clinicflow.cli import main

sys.exit(main())
