import os
import sys

# the benchmark scripts import each other (``_common``, ``peer_ops``) as they do when run from benchmarks/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "benchmarks"))
