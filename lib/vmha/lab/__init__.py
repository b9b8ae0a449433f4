"""``vmha lab``: a real Pacemaker + libvirt cluster of namespace "hosts" on one machine.

Each host is a network namespace with its own mount, PID, UTS and IPC namespaces, running
corosync, pacemaker, virtlogd and libvirtd.  A power switch daemon turns hosts off (SIGKILL of
the host's PID-namespace init) and on; a fence agent asks it, so fencing is real.  Guests are
tiny direct-kernel TCG VMs built from Debian packages.  Nothing here runs at import time.
"""
