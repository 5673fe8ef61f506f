"""mmsegmentation runs here under mmcv-lite: its one compiled op the heads call (PSANet's PSAMask) is given the
mmcv CPU kernel's loops (tests/psamask_kernel.py), so its PSAHead runs as shipped."""
from psamask_kernel import install

install()
