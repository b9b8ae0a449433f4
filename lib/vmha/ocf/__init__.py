"""The OCF 1.1 contract: exit codes, context, parameters, metadata, dispatch, logging."""
