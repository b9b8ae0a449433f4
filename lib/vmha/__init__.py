"""vmha: OCF resource agents that make libvirt virtual machines highly available."""

__version__ = "0.1.0"
