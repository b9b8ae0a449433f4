"""Pure decisions: facts in, an OCF outcome out. No I/O."""
