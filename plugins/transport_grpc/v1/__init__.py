"""Generated stubs of zkernel.v1 (see ../regen.py); do not edit."""
