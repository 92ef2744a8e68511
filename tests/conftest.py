import os
import sys
from pathlib import Path

# tests import `reference` and `helpers` as plain modules
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "2")
