"""ocf:vmha:HypervisorHealth: the host and its virtualization layer as node health."""
