"""zkernel's built-in plugins. Each registers through the ``zkernel.plugins`` entry point
group exactly like a third-party plugin would, and uses only the kernel's public API."""
