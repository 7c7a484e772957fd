"""pytest from the repository root or bench/: the bench's packages import as top-level names."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
