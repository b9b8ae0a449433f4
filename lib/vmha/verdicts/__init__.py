"""Pure decisions: facts in, a verdict (OCF code + reason, or a health level) out; no I/O."""
