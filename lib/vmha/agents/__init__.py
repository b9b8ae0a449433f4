"""One module per OCF agent: its parameters, actions and policy."""
