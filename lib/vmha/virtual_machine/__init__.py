"""ocf:vmha:VirtualMachine: one libvirt domain (agent.py is the story of each action)."""
