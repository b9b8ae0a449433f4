"""Everything that talks to libvirt; the only package that imports it."""
