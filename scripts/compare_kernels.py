"""Each kernel side by side: numpy reference, parallel cpu kernel, single-threaded twin.

    python scripts/compare_kernels.py                          # default shapes, float32
    python scripts/compare_kernels.py --shapes 256x784x1024 --dtype float32,float64
    python scripts/compare_kernels.py --json > kernels.json
    python scripts/compare_kernels.py --plot kernels.png       # needs matplotlib
Same as `python -m fastbp bench`.
"""
import sys

from fastbp.bench import main

if __name__ == "__main__":
    sys.exit(main())
