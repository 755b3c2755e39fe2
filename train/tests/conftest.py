# Puts train/ on the import path for the tests (they run with: .venv-train/bin/python -m pytest train/tests).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
